import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { execSpecFlags, specFromFlags, specTarget } from '../../execFlags.js';
import { rfc3339 } from '../../duration.js';
import { LineSplitter } from '../../lineSplitter.js';
import { CliError } from '../../cliError.js';

export default class ExecRun extends TetherCommand {
  static override summary = 'Run a command and stream its output; exit with its exit code.';
  static override description = `Prints JSON lines: {"type":"started","exec_id","status":"running","started_at"}, then {"type":"log","stream":"stdout|stderr","line","seq"} for each line as it comes, then {"type":"finished","exec_id","status":"finished","end_reason","exit_code","finished_at","duration_ms","error"?} (error, as codex-remote words it, when it did not exit 0: "exit status N", "signal: SIGTERM", or why it failed to start or was lost).

The CLI exits with the command's exit code (128+N if signal N ended it, 124 if it timed out, 127 if it could not start, 255 if it was lost: the daemon restarted without it, or the connection to the daemon was lost for good while it ran, the error then on stderr). Ctrl-C cancels the command (TERM, then KILL) and still prints how it ended.`;
  static override examples = [
    { description: 'Run a command on this machine', command: "<%= config.bin %> exec run --cmd 'uname -a'" },
    { description: 'In a directory, with a variable and a time limit', command: "<%= config.bin %> exec run --machine gpu1 --cwd /data/run --env CUDA_VISIBLE_DEVICES=0 --timeout 10m --cmd 'python eval.py'" },
    { description: 'Run a local script file remotely with bash', command: '<%= config.bin %> exec run --machine gpu1 --shell bash --script ./setup.sh' },
  ];
  static override flags = { machine: machineFlag, ...execSpecFlags };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecRun);
    this.useConfig(flags.config);
    const opened = await this.openMachine(flags.machine);
    const { machine } = opened;
    const { commandExitCode, durationMs, finishedError } = await loadRuntime();
    const spec = await specFromFlags(flags, specTarget(opened));
    const initial = await machine.exec.start(spec);
    const id = initial.id;
    let startedShown = false;
    const showStarted = (startedAt: number | null) => {
      if (startedShown) return;
      startedShown = true;
      this.emit({ type: 'started', exec_id: id, status: 'running', started_at: rfc3339(startedAt) });
    };
    if (initial.status === 'running') showStarted(initial.startedAt);

    // Ctrl-C stops the command, not just this view of it.
    const onInterrupt = () => void machine.exec.cancel(id).catch(() => undefined);
    process.once('SIGINT', onInterrupt);
    const lines = new LineSplitter();
    try {
      await new Promise<void>((resolve, reject) => {
        machine.exec.follow(id, 0).subscribe({
          next: (event) => {
            if (event.type === 'ExecutionStarted') showStarted(event.ts);
            else if (event.type === 'OutputProduced') for (const record of lines.push(event.data.stream, event.data.data, event.seq)) this.emit(record);
          },
          error: reject,
          complete: resolve,
        });
      });
    } catch (error) {
      // The daemon went away for good (stopped, or unreachable past the reconnect window, which
      // the machine already waited for): how the command ends is unknown here, so it counts as
      // lost (255, as ssh exits when its connection drops).
      const code = (error as { code?: unknown }).code;
      if (code !== 'CONNECTION_LOST' && code !== 'OUTCOME_UNKNOWN') throw error;
      for (const record of lines.flush()) this.emit(record);
      this.reportError(
        new CliError('CONNECTION_LOST', `${(error as Error).message}; the connection to the daemon was lost while ${id} ran, so how it ended is unknown`, {
          hint: `once the daemon is back, tether exec result${flags.machine === 'local' ? '' : ` --machine ${flags.machine}`} --id ${id} tells how it ended`,
          cause: error,
        }),
      );
      process.exitCode = 255;
      return;
    } finally {
      process.off('SIGINT', onInterrupt);
    }
    for (const record of lines.flush()) this.emit(record);
    const state = await machine.exec.get(id);
    this.emit({
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
      throw failedToStart(state);
    }
    process.exitCode = commandExitCode(state);
  }
}

function withError(error: string | undefined): { error?: string } {
  return error === undefined ? {} : { error };
}

