import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';

export default class ExecCancel extends TetherCommand {
  static override summary = 'Stop an execution: its whole process group, escalating to KILL.';
  static override description =
    'Sends --signal (TERM) to the process group, KILL after --grace, and checks nothing of it is left; returns once it has ended. Prints {"canceled":true,"exec_id"}, or {"canceled":false,"reason","exec_id"} when it had already finished.';
  static override examples = [
    { description: 'Cancel a run', command: '<%= config.bin %> exec cancel --id train-42' },
    { description: 'Interrupt first, give it 10 seconds to clean up', command: '<%= config.bin %> exec cancel --machine gpu1 --id train-42 --signal INT --grace 10s' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
    signal: Flags.string({ description: 'the first signal (TERM, INT, HUP…)', default: 'TERM' }),
    grace: Flags.string({ description: 'time between the signal and KILL', default: '3s' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecCancel);
    this.useConfig(flags.config);
    const graceMs = parseDuration(flags.grace, 'grace', { allowZero: true });
    const { machine } = await this.openMachine(flags.machine);
    const result = await machine.exec.cancel(flags.id, { signal: flags.signal, graceMs });
    this.emit({ canceled: result.cancelled, ...(result.reason !== undefined ? { reason: result.reason } : {}), exec_id: result.state.id });
  }
}
