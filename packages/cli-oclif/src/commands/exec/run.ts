import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { execSpecFlags, specFromFlags, textFormatFlag } from '../../execFlags.js';
import { rfc3339 } from '../../duration.js';
import { LineSplitter } from '../../lineSplitter.js';

export default class ExecRun extends TetherCommand {
  static override summary = 'Run a command and stream its output; exit with its exit code.';
  static override description = `Prints JSON lines: {"type":"started","exec_id","status":"running","started_at"}, then {"type":"log","stream":"stdout|stderr","line","seq"} for each line as it comes, then {"type":"finished","exec_id","status":"finished","end_reason","exit_code","finished_at","duration_ms"}.

The CLI exits with the command's exit code (128+N if signal N ended it, 124 if it timed out, 127 if it could not start, 255 if it was lost). Ctrl-C cancels the command (TERM, then KILL) and still prints how it ended.`;
  static override examples = [
    { description: 'Run a command on this machine', command: "<%= config.bin %> exec run --cmd 'uname -a'" },
    { description: 'In a directory, with a variable and a time limit', command: "<%= config.bin %> exec run --machine gpu1 --cwd /data/run --env CUDA_VISIBLE_DEVICES=0 --timeout 10m --cmd 'python eval.py'" },
    { description: 'Run a local script file remotely with bash', command: '<%= config.bin %> exec run --machine gpu1 --shell bash --script ./setup.sh' },
  ];
  static override flags = { machine: machineFlag, ...execSpecFlags, format: textFormatFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecRun);
    this.useConfig(flags.config);
    this.useFormat(flags.format);
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const { commandExitCode, durationMs } = await loadRuntime();
    const spec = await specFromFlags(flags, isLocal);
    const initial = await machine.exec.start(spec);
    const id = initial.id;
    // Could not start (a missing --cwd, no such shell): the error alone, nothing on stdout.
    if (initial.endReason === 'failed_to_start') {
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(initial);
    }
    let startedShown = false;
    const showStarted = (startedAt: number | null) => {
      if (startedShown) return;
      startedShown = true;
      this.emitStatus({ type: 'started', exec_id: id, status: 'running', started_at: rfc3339(startedAt) }, () => `started ${id}`);
    };
    if (initial.status === 'running') showStarted(initial.startedAt);

    // Ctrl-C stops the command, not just this view of it.
    const onInterrupt = () => void machine.exec.cancel(id).catch(() => undefined);
    process.once('SIGINT', onInterrupt);
    try {
      const lines = new LineSplitter();
      await new Promise<void>((resolve, reject) => {
        machine.exec.follow(id, 0).subscribe({
          next: (event) => {
            if (event.type === 'ExecutionStarted') showStarted(event.ts);
            else if (event.type === 'OutputProduced') for (const record of lines.push(event.data.stream, event.data.data, event.seq)) this.emitLine(record);
          },
          error: reject,
          complete: resolve,
        });
      });
      for (const record of lines.flush()) this.emitLine(record);
    } finally {
      process.off('SIGINT', onInterrupt);
    }
    const state = await machine.exec.get(id);
    if (state.endReason === 'failed_to_start' && !startedShown) {
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(state);
    }
    const finished = {
      type: 'finished',
      exec_id: id,
      status: 'finished',
      end_reason: state.endReason,
      exit_code: state.exitCode,
      finished_at: rfc3339(state.finishedAt),
      duration_ms: durationMs(state),
    };
    this.emitStatus(finished, () => `${id} ${state.endReason ?? 'finished'}${state.exitCode === null ? '' : ` ${state.exitCode}`} after ${finished.duration_ms} ms`);
    if (state.endReason === 'failed_to_start') {
      const { failedToStart } = await import('../../execFailure.js');
      throw failedToStart(state);
    }
    process.exitCode = commandExitCode(state);
  }
}

