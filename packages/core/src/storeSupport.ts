import { TetherError } from './errors.js';
import { AFTER_TERMINAL_EVENT_TYPES, ExecutionEvent as ExecutionEventSchema, isTerminal, type ExecutionEvent, type StoredEvent } from './events.js';
import type { AppendOptions, ListOptions, ListPage, ReadOptions } from './eventStore.js';
import type { ExecutionState } from './state.js';

// Helpers shared by EventStore implementations, so each store keeps the same rules.

/**
 * Validates an append before anything is written: the stream name, the events' shapes, the
 * expected position, and that nothing but notification records follows a terminal event.
 */
export function checkAppend(
  stream: string,
  events: readonly ExecutionEvent[],
  lastSeq: number,
  state: ExecutionState | undefined,
  options: AppendOptions,
): void {
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 256) {
    throw new TetherError('INVALID_ARGUMENT', 'a stream name is a non-empty string of at most 256 characters');
  }
  if (!Array.isArray(events) || events.length === 0) {
    throw new TetherError('INVALID_ARGUMENT', 'append needs at least one event');
  }
  if (options.expectedSeq !== undefined && options.expectedSeq !== lastSeq) {
    throw new TetherError('APPEND_CONFLICT', `stream ${stream} is at seq ${lastSeq}, not ${options.expectedSeq}`, {
      stream,
      expectedSeq: options.expectedSeq,
      actualSeq: lastSeq,
    });
  }
  for (const event of events) {
    const parsed = ExecutionEventSchema.safeParse(event);
    if (!parsed.success) {
      throw new TetherError('INVALID_ARGUMENT', `invalid ${String((event as { type?: unknown })?.type)} event: ${parsed.error.issues[0]?.message}`);
    }
  }
  const finished = state?.status === 'finished';
  const terminalAt = events.findIndex(isTerminal);
  const afterwords = events.every((e) => AFTER_TERMINAL_EVENT_TYPES.has(e.type));
  if (!finished && afterwords) {
    throw new TetherError('INVALID_ARGUMENT', `stream ${stream} has not ended: notification records follow a terminal event`, { stream });
  }
  if ((finished && !afterwords) || (terminalAt !== -1 && terminalAt !== events.length - 1)) {
    throw new TetherError('EXEC_FINISHED', `stream ${stream} has ended; nothing may follow its terminal event`, { stream });
  }
}

/** Gives events their seq (contiguous after `lastSeq`) and timestamp. */
export function stampEvents(events: readonly ExecutionEvent[], lastSeq: number, ts: number = Date.now()): StoredEvent[] {
  return events.map((event, i) => ({ ...event, seq: lastSeq + 1 + i, ts }) as StoredEvent);
}

/** Applies ReadOptions to a seq-ordered array (for stores that hold a stream in memory). */
export function sliceRead(events: readonly StoredEvent[], options: ReadOptions): StoredEvent[] {
  const after = options.afterSeq ?? 0;
  const before = options.beforeSeq ?? Number.POSITIVE_INFINITY;
  // seq n sits at index n-1: slice directly instead of scanning.
  const lo = Math.max(0, after);
  const hi = Math.min(events.length, before - 1);
  if (hi <= lo) return [];
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const page = options.reverse ? events.slice(Math.max(lo, hi - limit), hi).reverse() : events.slice(lo, Math.min(hi, lo + limit));
  return options.maxBytes === undefined ? page : page.slice(0, countWithinBytes(page, options.maxBytes));
}

/** How many of `events` a page bounded by `maxBytes` of output holds (at least one). */
export function countWithinBytes(events: readonly StoredEvent[], maxBytes: number): number {
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (event.type === 'OutputProduced') bytes += event.data.data.byteLength;
    if (bytes >= maxBytes) return i + 1;
  }
  return events.length;
}

const DEFAULT_LIST_LIMIT = 100;

/** Newest first by request time, then id; the cursor is the last item's position. */
export function compareNewestFirst(a: ExecutionState, b: ExecutionState): number {
  return (b.requestedAt ?? 0) - (a.requestedAt ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function encodeListCursor(state: ExecutionState): string {
  return Buffer.from(JSON.stringify([state.requestedAt ?? 0, state.id])).toString('base64url');
}

export function decodeListCursor(cursor: string): { requestedAt: number; id: string } {
  try {
    const [requestedAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof requestedAt === 'number' && typeof id === 'string') return { requestedAt, id };
  } catch {
    // fall through to the error below
  }
  throw new TetherError('INVALID_ARGUMENT', 'invalid list cursor');
}

/** Pages a set of states by ListOptions (for stores that can hold every state in memory). */
export function listPage(states: Iterable<ExecutionState>, options: ListOptions): ListPage {
  const limit = options.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new TetherError('INVALID_ARGUMENT', 'limit must be a positive integer');
  let all = [...states].filter((s) => options.status === undefined || s.status === options.status).sort(compareNewestFirst);
  if (options.cursor !== undefined) {
    const { requestedAt, id } = decodeListCursor(options.cursor);
    const mark = { requestedAt, id } as ExecutionState;
    all = all.filter((s) => compareNewestFirst(mark, s) < 0);
  }
  const items = all.slice(0, limit);
  const last = items[items.length - 1];
  return all.length > limit && last ? { items, cursor: encodeListCursor(last) } : { items };
}
