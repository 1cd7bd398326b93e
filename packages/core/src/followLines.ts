import { Observable, type OperatorFunction } from 'rxjs';
import type { OutputStream, StoredEvent } from './events.js';
import { DEFAULT_MAX_LINE_BYTES, LineCutter } from './logs.js';
import type { ExecApi, LogLine } from './machine.js';

export interface FollowLinesOptions {
  /** Start after this seq (a `seq` seen before). Default 0: from the start. */
  readonly afterSeq?: number;
  /** Which output. Default: all of it (`stdout`, `stderr` and `pty`). */
  readonly streams?: readonly OutputStream[];
  /** A line longer than this keeps its end and is marked `cut`, as `toLines` does. Default 64 KiB. */
  readonly maxLineBytes?: number;
}

/**
 * An operator from an execution's events (`exec.follow`) to its output as whole lines, each
 * stream cut separately: a line is emitted when its newline arrives, with the seq of the event
 * that holds its last byte; each stream's unfinished last line is emitted when the events
 * complete (after the terminal event). Lines are cut exactly as `toLines` cuts a tail (UTF-8
 * decoded across chunks, `\r\n` as one end, over-long lines kept by their end with `cut: true`),
 * so memory is bounded by `maxLineBytes` per stream whatever the command prints.
 *
 * An error of the source (the connection given up, the execution unknown) is passed on without
 * flushing: the unfinished line may still grow.
 */
export function outputLines(options: Omit<FollowLinesOptions, 'afterSeq'> = {}): OperatorFunction<StoredEvent, LogLine> {
  const streams = new Set<OutputStream>(options.streams ?? ['stdout', 'stderr', 'pty']);
  return (events) =>
    new Observable<LogLine>((subscriber) => {
      const cutter = new LineCutter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
      return events.subscribe({
        next(event) {
          if (event.type !== 'OutputProduced' || !streams.has(event.data.stream)) return;
          for (const line of cutter.push({ stream: event.data.stream, seq: event.seq, data: event.data.data })) subscriber.next(line);
        },
        error(error: unknown) {
          subscriber.error(error);
        },
        complete() {
          for (const line of cutter.flush()) subscriber.next(line);
          subscriber.complete();
        },
      });
    });
}

/**
 * The output of an execution as lines, live: `exec.follow(id, afterSeq)` through
 * `outputLines`. Replays what was recorded, then follows; completes once the execution has
 * finished and its last lines are out. Works alike on local and remote machines (a remote
 * follow resumes by itself after a reconnect, without a gap or a duplicate).
 *
 * Resuming with `afterSeq` set to a line's `seq` starts after the event that ended that line:
 * whatever that event held after the newline (the start of the next line) is not read again.
 */
export function followLines(exec: Pick<ExecApi, 'follow'>, id: string, options: FollowLinesOptions = {}): Observable<LogLine> {
  return exec.follow(id, options.afterSeq ?? 0).pipe(outputLines(options));
}
