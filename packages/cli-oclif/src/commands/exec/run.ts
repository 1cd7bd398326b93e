import type { ExecStartParams, MachineApi } from '@tether/core';
import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand, fanOutMachineFlag } from '../../baseCommand.js';
import { execSpecFlags, projectFlags, projectOption, specFromFlags, specTarget, textFormatFlag } from '../../execFlags.js';
import { rfc3339 } from '../../duration.js';
import { LineSplitter } from '../../lineSplitter.js';
import { CliError, describeError } from '../../cliError.js';

export default class ExecRun extends TetherCommand {
  static override summary = 'Run a command and stream its output; exit with its exit code.';
  static override description = `Prints JSON lines: {"type":"started","exec_id","status":"running","started_at"}, then {"type":"log","stream":"stdout|stderr","line","seq"} for each line as it comes, then {"type":"finished","exec_id","status":"finished","end_reason","exit_code","finished_at","duration_ms","error"?} (error, as codex-remote words it, when it did not exit 0: "exit status N", "signal: SIGTERM", or why it failed to start or was lost).

The CLI exits with the command's exit code (128+N if signal N ended it, 124 if it timed out, 127 if it could not start, 255 if it was lost: the daemon restarted without it, or the connection to the daemon was lost for good while it ran, the error then on stderr). Ctrl-C cancels the command (TERM, then KILL) and still prints how it ended.

With several machines (--machine a,b or @label) it runs on all at once: every line carries "machine", a machine that cannot be reached prints {"machine","error":{…}}, and the CLI exits with the first non-zero code in the order given.`;
  static override examples = [
    { description: 'Run a command on this machine', command: "<%= config.bin %> exec run --cmd 'uname -a'" },
    { description: 'In a directory, with a variable and a time limit', command: "<%= config.bin %> exec run --machine gpu1 --cwd /data/run --env CUDA_VISIBLE_DEVICES=0 --timeout 10m --cmd 'python eval.py'" },
    { description: 'Run a local script file remotely with bash', command: '<%= config.bin %> exec run --machine gpu1 --shell bash --script ./setup.sh' },
    { description: 'On every machine labelled gpu', command: "<%= config.bin %> exec run --machine @gpu --cmd 'nvidia-smi -L'" },
  ];
  static override flags = { machine: fanOutMachineFlag('lines carry "machine"'), ...execSpecFlags, ...projectFlags, format: textFormatFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecRun);
    this.useConfig(flags.config);
    const project = projectOption(flags);
    const { isFanOut, resolveTargets, forEachTarget } = await import('../../fanOut.js');
    if (isFanOut(flags.machine)) {
      if (project !== undefined) throw new CliError('USAGE', '--project takes one machine', { hint: 'run it on each machine on its own' });
      const machines = await this.machines();
      const targets = await resolveTargets(machines, flags.machine);
      const code = await forEachTarget(
        targets,
        async (name) => {
          const opened = await machines.open(name);
          return this.#runOn(opened.machine, await specFromFlags(flags, specTarget(opened)), (value) => this.emit({ ...value, machine: name }), name);
        },
        (line) => this.emit(line),
      );
      process.exitCode = code;
      return;
    }
    // One machine: text on a terminal (or --format text), JSON lines in a pipe. (Fan-out: always JSON, each line naming its machine.)
    this.useFormat(flags.format);
    const opened = await this.openMachine(flags.machine);
    let spec = await specFromFlags(flags, specTarget(opened));
    if (project !== undefined) {
      const { projectMirror, projectSpec } = await import('../../project.js');
      const mirror = await projectMirror(await this.machines(), opened.name, project.project);
      spec = await projectSpec(opened.machine, spec, { ...project, mirror, ...(flags.cwd !== undefined ? { subdir: flags.cwd } : {}) });
    }
    const code = await this.#runOn(opened.machine, spec, (value) => this.#show(value), flags.machine, true);
    process.exitCode = code;
  }

  /** A record of one machine's run: a log line as emitLine shows it, started/finished as emitStatus does. */
  #show(value: Record<string, unknown>): void {
    if (value['type'] === 'log') return this.emitLine(value as never);
    const id = String(value['exec_id']);
    if (value['type'] === 'started') return this.emitStatus(value as { type: string }, () => `started ${id}`);
    if (value['type'] === 'finished') {
      const code = value['exit_code'] === null || value['exit_code'] === undefined ? '' : ` ${String(value['exit_code'])}`;
      return this.emitStatus(value as { type: string }, () => `${id} ${String(value['end_reason'] ?? 'finished')}${code} after ${String(value['duration_ms'])} ms`);
    }
    this.emit(value);
  }

  /** Starts, streams and reports one execution; resolves with the exit code (throws for a failed start when `throwFailedStart`). */
  async #runOn(machine: MachineApi, spec: ExecStartParams, emit: (value: Record<string, unknown>) => void, machineName: string, throwFailedStart = false): Promise<number> {
    const { commandExitCode, durationMs, finishedError } = await loadRuntime();
    const initial = await machine.exec.start(spec);
    const id = initial.id;
    // Could not start (a missing --cwd, no such shell): the error alone, nothing on stdout.
    if (throwFailedStart && initial.endReason === 'failed_to_start') {
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(initial);
    }
    // Could not start (a missing --cwd, no such shell): the error alone, nothing on stdout.
    if (initial.endReason === 'failed_to_start') {
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(initial);
    }
    let startedShown = false;
    const showStarted = (startedAt: number | null) => {
      if (startedShown) return;
      startedShown = true;
      emit({ type: 'started', exec_id: id, status: 'running', started_at: rfc3339(startedAt) });
    };
    if (initial.status === 'running') showStarted(initial.startedAt);

    // Ctrl-C stops the command, not just this view of it.
    const onInterrupt = () => void machine.exec.cancel(id).catch(() => undefined);
    process.once('SIGINT', onInterrupt);
    const lines = new LineSplitter();
    let lastSeq = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        machine.exec.follow(id, 0).subscribe({
          next: (event) => {
            lastSeq = event.seq;
            if (event.type === 'ExecutionStarted') showStarted(event.ts);
            else if (event.type === 'OutputProduced') for (const record of lines.push(event.data.stream, event.data.data, event.seq)) emit({ ...record });
          },
          error: reject,
          complete: resolve,
        });
      });
    } catch (error) {
      // The daemon went away for good (stopped, or unreachable past the reconnect window, which
      // the machine already waited for): how the command ends is unknown here, so it counts as
      // lost (255, as ssh exits when its connection drops).
      // The command itself runs on under its supervisor: the next daemon picks it up.
      const code = (error as { code?: unknown }).code;
      if (code !== 'CONNECTION_LOST' && code !== 'OUTCOME_UNKNOWN') throw error;
      for (const record of lines.flush()) emit({ ...record });
      const on = machineName === 'local' ? '' : ` --machine ${machineName}`;
      this.reportError(
        new CliError('CONNECTION_LOST', `${(error as Error).message}; the connection to the daemon was lost while ${id} ran, so how it ended is unknown here (it may still be running)`, {
          hint: `once the daemon is back, tether exec watch${on} --id ${id} --after-seq ${lastSeq} goes on with its output and tether exec result${on} --id ${id} tells how it ended`,
          cause: error,
        }),
      );
      return 255;
    } finally {
      process.off('SIGINT', onInterrupt);
    }
    for (const record of lines.flush()) emit({ ...record });
    const state = await machine.exec.get(id);
    if (throwFailedStart && state.endReason === 'failed_to_start' && !startedShown) {
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(state);
    }
    emit({
      type: 'finished',
      exec_id: id,
      status: 'finished',
      end_reason: state.endReason,
      exit_code: state.exitCode,
      finished_at: rfc3339(state.finishedAt),
      duration_ms: durationMs(state),
      ...withError(finishedError(state)),
    });
    if (state.endReason === 'failed_to_start') {
      const { failedToStart } = await import('../../execFailure.js');
      if (throwFailedStart) throw failedToStart(state);
      emit({ ...describeError(failedToStart(state)).json });
    }
    return commandExitCode(state);
  }
}

function withError(error: string | undefined): { error?: string } {
  return error === undefined ? {} : { error };
}

