import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { execSpecFlags, specFromFlags } from '../../execFlags.js';

export default class ExecStart extends TetherCommand {
  static override summary = 'Start a command and return at once; it keeps running.';
  static override description = `Prints {"exec_id","machine","status"} as soon as the command runs (status "running", or "queued" behind --gpu-gate). Follow it with exec result, exec logs and exec watch, from any shell: it belongs to the machine's daemon, not to this call.

Give --id KEY to make a retry safe: a start repeated with the same id returns the existing execution and never starts a second process.`;
  static override examples = [
    { description: 'Start a long job on this machine', command: "<%= config.bin %> exec start --cmd 'sleep 60; echo done'" },
    { description: 'Start a training run once a GPU is free, retry-safe', command: "<%= config.bin %> exec start --machine gpu1 --id train-42 --gpu-gate --cwd /data/run --cmd 'python train.py'" },
    { description: 'Keep stdin open to write to it later', command: "<%= config.bin %> exec start --stdin --cmd 'python3 -i'" },
  ];
  static override flags = {
    machine: machineFlag,
    ...execSpecFlags,
    id: Flags.string({ description: 'a key of your choosing (1-128 of A-Z a-z 0-9 . _ : -) that makes the start idempotent' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecStart);
    this.useConfig(flags.config);
    const { machine, name, isLocal } = await this.openMachine(flags.machine);
    const spec = await specFromFlags(flags, isLocal);
    const state = await machine.exec.start({ ...spec, ...(flags.id !== undefined ? { id: flags.id } : {}) });
    if (state.endReason === 'failed_to_start') {
      // The error alone (its message names the exec_id), nothing on stdout.
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(state);
    }
    if (state.status === 'finished') {
      this.emit({ exec_id: state.id, machine: name, status: state.status, end_reason: state.endReason, exit_code: state.exitCode, ...(state.error ? { error: state.error.message } : {}) });
      return;
    }
    this.emit({ exec_id: state.id, machine: name, status: state.status });
  }
}
