import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';

export default class ExecSignal extends TetherCommand {
  static override summary = "Send a signal to an execution's process group.";
  static override description = 'Delivers the signal as is (no escalation: exec cancel stops it for good). Prints {"ok":true}.';
  static override examples = [
    { description: 'Interrupt it (like Ctrl-C)', command: '<%= config.bin %> exec signal --id train-42 --signal INT' },
    { description: 'Ask a server to reload', command: '<%= config.bin %> exec signal --machine web --id srv-1 --signal HUP' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
    signal: Flags.string({ description: 'the signal: INT, TERM, HUP, USR1, KILL… (or its number)', required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecSignal);
    this.useConfig(flags.config);
    const { machine } = await this.openMachine(flags.machine);
    await machine.exec.signal(flags.id, flags.signal);
    this.emit({ ok: true });
  }
}
