import { Flags } from '@oclif/core';
import type { StoredEvent } from '@tether/core';
import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { parseDuration } from '../../duration.js';
import { LineSplitter, type LogRecord } from '../../lineSplitter.js';

export default class ExecWatch extends TetherCommand {
  static override summary = 'Follow an execution from a durable cursor; exit with its exit code.';
  static override description = `Prints {"type":"log","stream","line","seq"} for each line after --after-seq (default: from the start), live as they come, then {"type":"summary","exec_id","status","end_reason","exit_code","duration_ms","last_seq"}.

last_seq is the cursor: "exec watch --after-seq <last_seq>" continues exactly where this one stopped, with nothing missed and nothing twice. It stops when the execution finishes (and exits with its exit code, like exec run), when a line matches --until-pattern, after --max-events lines, or after --timeout (exit 0 while it still runs). It stops between events, so it may print a few lines past --max-events, and a line cut by the stop is printed in two parts across two watches.`;
  static override examples = [
    { description: 'Follow to the end', command: '<%= config.bin %> exec watch --id train-42' },
    { description: 'Wait until the server says it is ready', command: "<%= config.bin %> exec watch --id web-1 --until-pattern 'listening on'" },
    { description: 'Read 100 lines at a time, resuming from the cursor', command: '<%= config.bin %> exec watch --id train-42 --after-seq 118 --max-events 100' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
    stream: Flags.string({ description: 'which output', options: ['stdout', 'stderr', 'both'], default: 'both' }),
    'after-seq': Flags.integer({ description: 'start after this seq (a last_seq printed before)', min: 0, default: 0 }),
    'until-pattern': Flags.string({ description: 'stop after a line matching this regular expression' }),
    'max-events': Flags.integer({ description: 'stop after this many lines', min: 1 }),
    timeout: Flags.string({ description: 'stop watching after this long (500ms, 10s, 5m); the execution goes on' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecWatch);
    this.useConfig(flags.config);
    let pattern: RegExp | undefined;
    try {
      pattern = flags['until-pattern'] === undefined ? undefined : new RegExp(flags['until-pattern']);
    } catch (error) {
      throw new CliError('INVALID_ARGUMENT', `--until-pattern: invalid regular expression: ${(error as Error).message}`, { hint: 'a JavaScript regular expression, e.g. "epoch \\\\d+ done"' });
    }
    const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, 'timeout');
    const { machine } = await this.openMachine(flags.machine);
    const { commandExitCode, durationMs, setLongTimeout } = await loadRuntime();
    const wanted = (stream: string) => flags.stream === 'both' || (flags.stream === 'stderr') === (stream === 'stderr');

    const lines = new LineSplitter();
    let cursor = flags['after-seq'];
    let printed = 0;
    let finished = false;
    const print = (records: LogRecord[]) => {
      let matched = false;
      for (const record of records) {
        this.emit(record);
        printed++;
        if (pattern?.test(record.line)) matched = true;
      }
      return matched;
    };

    await new Promise<void>((resolve, reject) => {
      let timer: { clear(): void } | undefined;
      let stopped = false;
      const subscription = machine.exec.follow(flags.id, cursor).subscribe({
        next: (event: StoredEvent) => {
          if (stopped) return;
          cursor = event.seq;
          let stop = false;
          if (event.type === 'OutputProduced' && wanted(event.data.stream)) stop = print(lines.push(event.data.stream, event.data.data, event.seq));
          if (flags['max-events'] !== undefined && printed >= flags['max-events']) stop = true;
          if (stop) done();
        },
        error: (error: unknown) => {
          if (stopped) return;
          timer?.clear();
          reject(error);
        },
        complete: () => {
          if (stopped) return;
          finished = true;
          done();
        },
      });
      function done() {
        stopped = true;
        timer?.clear();
        // Unsubscribing here ends the follow on the daemon; a synchronous stop comes before `subscription` is set.
        queueMicrotask(() => subscription.unsubscribe());
        resolve();
      }
      if (timeoutMs !== undefined) timer = setLongTimeout(done, timeoutMs);
    });
    print(lines.flush());

    const state = await machine.exec.get(flags.id);
    const over = finished || state.status === 'finished';
    this.emit({
      type: 'summary',
      exec_id: state.id,
      status: state.status,
      end_reason: over ? state.endReason : null,
      exit_code: over ? state.exitCode : null,
      duration_ms: durationMs(state),
      last_seq: cursor,
    });
    if (finished) process.exitCode = commandExitCode(state);
  }
}
