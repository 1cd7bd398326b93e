import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { loadRuntime } from '../../runtimeLoader.js';

export default class ExecResult extends TetherCommand {
  static override summary = 'Show the state of an execution.';
  static override description =
    'Prints {"exec_id","machine","status","end_reason"?,"exit_code"?,"pid","cmd","cwd","started_at","finished_at"?,"duration_ms","stdout_bytes","stderr_bytes","last_seq"}. status is running or finished (queued while a GPU gate holds it); end_reason is exited, signaled, cancelled, timed_out, failed_to_start or lost.';
  static override examples = [
    { description: 'Poll an execution until it has finished', command: '<%= config.bin %> exec result --id x0lq3k2m9a1b2c3d4e5f6' },
    { description: 'On a configured machine', command: '<%= config.bin %> exec result --machine gpu1 --id train-42' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecResult);
    this.useConfig(flags.config);
    const { machine, name } = await this.openMachine(flags.machine);
    const state = await machine.exec.get(flags.id);
    const { resultJson } = await loadRuntime();
    const { artifactsOf } = await import('../../project.js');
    const artifacts = await artifactsOf(machine, state);
    this.emit({ ...resultJson(state, name, state.spec?.cwd ? null : (await machine.info()).cwd), ...(artifacts !== undefined ? { artifacts } : {}) });
  }
}
