import type { ExecutionState, MachineApi, StoredEvent } from '@tether/core';
import { durationMs, setLongTimeout, type LongTimer } from '@tether/core';
import { LineSplitter, type LogRecord } from './lineSplitter.js';
import { commandExitCode } from './resultJson.js';

/** What `exec watch` (and the MCP server's exec_watch) watches for. */
export interface MonitorOptions {
  /** The executions; at least one. */
  readonly ids: readonly string[];
  readonly stream: 'stdout' | 'stderr' | 'both';
  /** Start after this seq (one execution only). Default 0: from the start. */
  readonly afterSeq?: number;
  /** With no afterSeq: start at each execution's current end (what is new from now on) instead of the start. */
  readonly fromEnd?: boolean;
  /** Print only lines matching one of these (all lines when empty). */
  readonly onPatterns?: readonly RegExp[];
  /** Stop after a line matching this (the line is printed). */
  readonly untilPattern?: RegExp;
  /** A running execution that prints nothing for this long → an `idle` event, and the watch stops. */
  readonly idleMs?: number;
  /** Stop after this many printed lines (between events: the rest of the event's lines are printed too). */
  readonly maxEvents?: number;
  /** Stop after this long; the executions go on. */
  readonly timeoutMs?: number;
  /** With several executions: stop when `any` has finished, or when `all` have. Default `all`. */
  readonly until?: 'any' | 'all';
  /** Stops the watch from outside (a closing MCP request). */
  readonly signal?: AbortSignal;
  /** Called with every event to print, in order. */
  readonly emit: (event: MonitorEvent) => void;
  /** Fields added to a finished execution's summary (`exec watch` adds its `artifacts`). */
  readonly summaryExtra?: (state: ExecutionState) => Promise<Readonly<Record<string, unknown>> | undefined>;
}

export type MonitorLog = LogRecord & { readonly exec_id?: string };
export interface MonitorIdle {
  readonly type: 'idle';
  readonly exec_id: string;
  readonly idle_ms: number;
  readonly last_seq: number;
}
export interface MonitorSummary {
  readonly type: 'summary';
  readonly exec_id: string;
  readonly status: ExecutionState['status'];
  readonly end_reason: ExecutionState['endReason'];
  readonly exit_code: number | null;
  readonly duration_ms: number;
  readonly last_seq: number;
  readonly artifacts?: unknown;
}
export type MonitorEvent = MonitorLog | MonitorIdle | MonitorSummary;

/** Why a watch stopped. */
export type MonitorStop = 'finished' | 'pattern' | 'idle' | 'max_events' | 'timeout' | 'aborted';

export interface MonitorResult {
  readonly stop: MonitorStop;
  readonly summaries: readonly MonitorSummary[];
  /** What the CLI exits with: the command's code once finished (see `monitorExitCode`). */
  readonly exitCode: number;
}

/** The exit code of a watch that stopped on `--idle`: none of the codes a command's end maps to (124 timeout, 127, 128+N, 255). */
export const IDLE_EXIT_CODE = 125;

interface Watched {
  readonly id: string;
  cursor: number;
  finished: boolean;
  summarised: boolean;
  readonly lines: LineSplitter;
  idleTimer?: LongTimer;
  subscription?: { unsubscribe(): void };
  finishOrder?: number;
  /** Finished with nothing after the cursor: a follow from there would wait for events that never come. */
  nothingLeft?: boolean;
}

/**
 * Follows executions from a durable cursor and passes on only what an agent would act on:
 * lines (all, or those matching `onPatterns`), an `idle` event when a running execution goes
 * quiet, and one summary per execution (when it finishes, or when the watch stops). Stops at the
 * first of: the `until` condition, an `untilPattern` line, `maxEvents` lines, idle, the timeout.
 */
export async function monitor(machine: MachineApi, options: MonitorOptions): Promise<MonitorResult> {
  const multi = options.ids.length > 1;
  const until = options.until ?? 'all';
  const onPatterns = options.onPatterns ?? [];
  const wanted = (stream: string) => options.stream === 'both' || (options.stream === 'stderr') === (stream === 'stderr');
  const watched: Watched[] = options.ids.map((id) => ({ id, cursor: options.afterSeq ?? 0, finished: false, summarised: false, lines: new LineSplitter() }));
  for (const w of watched) {
    const state = await machine.exec.get(w.id);
    if (options.fromEnd && options.afterSeq === undefined) w.cursor = state.lastSeq;
    w.nothingLeft = state.status === 'finished' && w.cursor >= state.lastSeq;
  }
  const summaries: MonitorSummary[] = [];
  let printed = 0;
  let finishCount = 0;
  let stop: MonitorStop | undefined;
  let idleHit = false;

  const show = (w: Watched, records: readonly LogRecord[]): boolean => {
    let matched = false;
    for (const record of records) {
      const untilHit = options.untilPattern?.test(record.line) ?? false;
      if (onPatterns.length > 0 && !untilHit && !onPatterns.some((p) => p.test(record.line))) continue;
      options.emit(multi ? { ...record, exec_id: w.id } : record);
      printed++;
      if (untilHit) matched = true;
    }
    return matched;
  };

  const summarise = async (w: Watched) => {
    if (w.summarised) return;
    w.summarised = true;
    const state = await machine.exec.get(w.id);
    const over = w.finished || state.status === 'finished';
    const summary: MonitorSummary = {
      type: 'summary',
      exec_id: state.id,
      status: state.status,
      end_reason: over ? state.endReason : null,
      exit_code: over ? state.exitCode : null,
      duration_ms: durationMs(state),
      last_seq: w.cursor,
      ...(over && options.summaryExtra ? await options.summaryExtra(state).catch(() => undefined) : undefined),
    };
    summaries.push(summary);
    options.emit(summary);
  };

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    let timer: LongTimer | undefined;
    const pending: Promise<unknown>[] = [];
    const end = (why: MonitorStop) => {
      if (stop !== undefined) return;
      stop = why;
      timer?.clear();
      options.signal?.removeEventListener('abort', onAbort);
      for (const w of watched) {
        w.idleTimer?.clear();
        // Unsubscribing ends the follow on the daemon; a synchronous stop comes before `subscription` is set.
        queueMicrotask(() => w.subscription?.unsubscribe());
      }
      void Promise.all(pending).then(() => {
        settled = true;
        resolve();
      }, reject);
    };
    const fail = (error: unknown) => {
      if (settled || stop !== undefined) return;
      stop = 'aborted';
      timer?.clear();
      for (const w of watched) {
        w.idleTimer?.clear();
        queueMicrotask(() => w.subscription?.unsubscribe());
      }
      settled = true;
      reject(error);
    };
    const onAbort = () => end('aborted');
    const armIdle = (w: Watched) => {
      if (options.idleMs === undefined || w.finished) return;
      w.idleTimer?.clear();
      w.idleTimer = setLongTimeout(() => {
        if (stop !== undefined || w.finished) return;
        idleHit = true;
        options.emit({ type: 'idle', exec_id: w.id, idle_ms: options.idleMs!, last_seq: w.cursor });
        end('idle');
      }, options.idleMs);
    };

    if (options.signal?.aborted) return end('aborted');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeoutMs !== undefined) timer = setLongTimeout(() => end('timeout'), options.timeoutMs);
    if (watched.length === 0) return end('finished');

    const completed = (w: Watched) => {
      w.finished = true;
      w.finishOrder = finishCount++;
      w.idleTimer?.clear();
      show(w, w.lines.flush());
      const done = summarise(w);
      pending.push(done);
      done.catch(fail);
      if (until === 'any' || watched.every((x) => x.finished)) end('finished');
    };
    for (const w of watched) {
      if (stop !== undefined) break;
      if (w.nothingLeft) {
        completed(w);
        continue;
      }
      let running = false;
      w.subscription = machine.exec.follow(w.id, w.cursor).subscribe({
        next: (event: StoredEvent) => {
          if (stop !== undefined) return;
          w.cursor = event.seq;
          if (event.type === 'ExecutionStarted' && !running) {
            running = true;
            armIdle(w);
          }
          if (event.type !== 'OutputProduced') return;
          if (!running) running = true;
          armIdle(w);
          if (!wanted(event.data.stream)) return;
          const matched = show(w, w.lines.push(event.data.stream, event.data.data, event.seq));
          if (matched) end('pattern');
          else if (options.maxEvents !== undefined && printed >= options.maxEvents) end('max_events');
        },
        error: fail,
        complete: () => {
          if (stop !== undefined) return;
          completed(w);
        },
      });
      // The first follow event may be long in coming (a quiet running execution): the idle clock starts now.
      void machine.exec.get(w.id).then((state) => {
        if (state.status === 'running' && !running) {
          running = true;
          armIdle(w);
        }
      }, fail);
    }
  });

  for (const w of watched) {
    if (w.summarised) continue;
    if (!w.finished) show(w, w.lines.flush());
    await summarise(w);
  }
  return { stop: stop!, summaries, exitCode: await monitorExitCode(machine, watched, until, idleHit) };
}

/**
 * One execution: its command's exit code once it has finished (as `exec run`), else 0. Several:
 * with `--until any` the code of the first to finish; with `all` the first non-zero code in the
 * order given. A watch stopped by `--idle` exits IDLE_EXIT_CODE.
 */
async function monitorExitCode(machine: MachineApi, watched: readonly Watched[], until: 'any' | 'all', idle: boolean): Promise<number> {
  if (idle) return IDLE_EXIT_CODE;
  const finished = watched.filter((w) => w.finished);
  if (finished.length === 0) return 0;
  if (watched.length > 1 && until === 'any') {
    const first = [...finished].sort((a, b) => a.finishOrder! - b.finishOrder!)[0]!;
    return commandExitCode(await machine.exec.get(first.id));
  }
  for (const w of finished) {
    const code = commandExitCode(await machine.exec.get(w.id));
    if (code !== 0) return code;
  }
  return 0;
}

/** Running and queued executions of a machine (for `--all-running`), oldest first. */
export async function activeExecutions(machine: MachineApi): Promise<string[]> {
  const ids: string[] = [];
  for (const status of ['running', 'queued'] as const) {
    let cursor: string | undefined;
    do {
      const page = await machine.exec.list({ status, limit: 500, ...(cursor ? { cursor } : {}) });
      ids.push(...page.items.map((s) => s.id));
      cursor = page.cursor;
    } while (cursor);
  }
  return ids.reverse();
}
