import { Flags } from '@oclif/core';
import { TetherCommand, fanOutMachineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import type { ExecStartParams } from '@tether/core';
import { execSpecFlags, projectFlags, projectOption, specFromFlags, specTarget, type ExecSpecFlagValues } from '../../execFlags.js';

export default class ExecStart extends TetherCommand {
  static override summary = 'Start a command and return at once; it keeps running.';
  static override description = `Prints {"exec_id","machine","status"} as soon as the command runs (status "running", or "queued" behind --gpu-gate). Follow it with exec result, exec logs and exec watch, from any shell: it belongs to the machine's daemon, not to this call.

Give --id KEY to make a retry safe: a start repeated with the same id returns the existing execution and never starts a second process.

--notify-cmd and --notify-url are the daemon's job: when the execution ends (however it ends), the daemon runs the command (once, with the summary JSON {"exec_id","machine","status","end_reason","exit_code",…} on stdin) and POSTs the same JSON to the URL (up to 5 tries with backoff on a 5xx, 408, 429 or a network error), whether or not any client is connected. exec result then shows "notifications":[{"channel","delivered","attempts","at","detail"}].`;
  static override examples = [
    { description: 'Start a long job on this machine', command: "<%= config.bin %> exec start --cmd 'sleep 60; echo done'" },
    { description: 'Start a training run once a GPU is free, retry-safe', command: "<%= config.bin %> exec start --machine gpu1 --id train-42 --gpu-gate --cwd /data/run --cmd 'python train.py'" },
    { description: 'On the first machine labelled gpu whose GPU is free', command: "<%= config.bin %> exec start --machine @gpu --gpu-gate --cmd 'python train.py'" },
    { description: 'Keep stdin open to write to it later', command: "<%= config.bin %> exec start --stdin --cmd 'python3 -i'" },
    { description: 'Be told when it ends, even with nobody watching', command: "<%= config.bin %> exec start --machine gpu1 --cmd 'python train.py' --notify-url https://hooks.example.com/tether --notify-cmd 'cat >> ~/finished.jsonl'" },
  ];
  static override flags = {
    machine: fanOutMachineFlag('one line each; with --gpu-gate: placed on the first whose GPU is free'),
    ...execSpecFlags,
    id: Flags.string({ description: 'a key of your choosing (1-128 of A-Z a-z 0-9 . _ : -) that makes the start idempotent' }),
    'notify-cmd': Flags.string({ description: 'when it ends, the daemon runs this shell command on the machine with the summary JSON on stdin' }),
    ...projectFlags,
    'notify-url': Flags.string({ description: 'when it ends, the daemon POSTs the summary JSON to this http(s) URL (retried with backoff)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecStart);
    this.useConfig(flags.config);
    const notify = { ...(flags['notify-cmd'] !== undefined ? { command: flags['notify-cmd'] } : {}), ...(flags['notify-url'] !== undefined ? { url: flags['notify-url'] } : {}) };
    const extra = { ...(flags.id !== undefined ? { id: flags.id } : {}), ...(Object.keys(notify).length > 0 ? { notify } : {}) };
    const project = projectOption(flags);
    const { isFanOut } = await import('../../fanOut.js');
    if (isFanOut(flags.machine)) {
      if (project !== undefined) throw new CliError('USAGE', '--project takes one machine', { hint: 'start it on each machine on its own' });
      return this.#fanOut(flags, extra);
    }
    const opened = await this.openMachine(flags.machine);
    const { machine, name } = opened;
    let spec = await specFromFlags(flags, specTarget(opened));
    if (project !== undefined) {
      const { projectMirror, projectSpec } = await import('../../project.js');
      const mirror = await projectMirror(await this.machines(), name, project.project);
      spec = await projectSpec(machine, spec, { ...project, mirror, ...(flags.cwd !== undefined ? { subdir: flags.cwd } : {}) });
    }
    const state = await machine.exec.start({ ...spec, ...extra });
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

  /**
   * Several machines. Without --gpu-gate: started on each, one line each (a machine that fails
   * prints {"machine","error"}). With --gpu-gate: placement — the first machine whose GPU gate
   * opens gets the execution (one line, with "placed": true); the others are not used.
   */
  async #fanOut(flags: ExecSpecFlagValues & { machine: string }, extra: Partial<ExecStartParams>): Promise<void> {
    const { resolveTargets, resultPerTarget } = await import('../../fanOut.js');
    const machines = await this.machines();
    const targets = await resolveTargets(machines, flags.machine);
    if (flags['gpu-gate']) {
      const { placeOnFreeGpu } = await import('../../placement.js');
      this.progress(`waiting for a free GPU on ${targets.join(', ')}`);
      const placed = await placeOnFreeGpu(machines, targets, flags, extra);
      this.stopProgress(placed.machine);
      this.emit({ exec_id: placed.state.id, machine: placed.machine, status: placed.state.status, placed: true, candidates: targets });
      return;
    }
    const code = await resultPerTarget(
      targets,
      async (name) => {
        const opened = await machines.open(name);
        const state = await opened.machine.exec.start({ ...(await specFromFlags(flags, specTarget(opened))), ...extra });
        return {
          line: { exec_id: state.id, machine: name, status: state.status, ...(state.status === 'finished' ? { end_reason: state.endReason, exit_code: state.exitCode } : {}) },
          exitCode: state.endReason === 'failed_to_start' ? 127 : 0,
        };
      },
      (line) => this.emit(line),
    );
    if (code !== 0) process.exitCode = code;
  }
}
