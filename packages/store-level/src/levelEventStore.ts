import { resolve } from 'node:path';
import {
  TetherError,
  checkAppend,
  decodeListCursor,
  encodeListCursor,
  evolve,
  initialState,
  isTerminal,
  needsSync,
  replayThenLive,
  stampEvents,
  type AppendOptions,
  type AppendResult,
  type EventStore,
  type ExecutionEvent,
  type ExecutionState,
  type ExecutionStatus,
  type ListOptions,
  type ListPage,
  type ReadOptions,
  type StoreHealth,
  type StoredEvent,
} from '@tether/core';
import { Observable, Subject, finalize, throwError, type Subscription } from 'rxjs';
import { decodeEvent, encodeEvent } from './eventCodec.js';
import {
  MAX_SEQ,
  SYNC_KEY,
  eventKey,
  eventPrefix,
  indexKey,
  indexPrefix,
  prefixEnd,
  requestedAtOfIndexKey,
  stateKey,
  streamOfIndexKey,
} from './keys.js';
import { LEVEL_OPTIONS, openStoreDatabase, type StoreDatabase } from './openStoreDatabase.js';
import { applyOutputCap } from './outputCap.js';
import { hasRoomToReopen, writeFailure } from './writeFailure.js';

export interface LevelEventStoreOptions {
  /**
   * Output bytes kept per execution. Output past the cap is dropped (the chunk that crosses it
   * is kept up to the cap) and reported by `OutputTruncated` events: one at the first drop, one
   * more just before the terminal event for everything dropped after that. Default 1 GiB.
   */
  readonly maxOutputBytesPerExecution?: number;
  /**
   * A group-commit batch stops taking appends once it holds this many bytes. Default 256 KiB:
   * larger batches add nothing to output throughput, and a sync append may have to wait for the
   * batch in flight.
   */
  readonly groupCommitBytes?: number;
  /** After an unsynced write, a sync write follows within this many ms. Default 100. */
  readonly syncIntervalMs?: number;
  /**
   * After a failed write, the store tries to resume after this many ms, doubling up to
   * `retryMaxMs`. Defaults 250 and 5000.
   */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /**
   * LevelDB's write buffer (memtable) size. Default 32 MiB: fewer, larger level-0 files (see
   * the README). Smaller values make LevelDB compact sooner (tests of a compaction that fails).
   */
  readonly writeBufferBytes?: number;
}

export interface PruneOptions {
  /** Keep this many finished executions (the most recently requested); remove older ones. */
  readonly keepFinished?: number;
  /** Remove finished executions that finished more than this many ms ago. */
  readonly olderThanMs?: number;
}

export interface PruneResult {
  /** Ids of the executions removed (events, state and index entries). */
  readonly removed: readonly string[];
  /** Events removed, all executions together. */
  readonly events: number;
}

/** Counters, for tests and diagnostics. */
export interface LevelEventStoreStats {
  /** Appends accepted. */
  readonly appends: number;
  /** LevelDB batch writes made by the group commit (appends share them). */
  readonly writes: number;
  /** Of those, the ones written with `sync: true` (fsync). */
  readonly syncWrites: number;
  /** State snapshots written (a stream's snapshot is rewritten at checkpoints, not per batch). */
  readonly checkpoints: number;
  /** Writes that failed (each one puts the store in its failed state until it recovers). */
  readonly writeFailures: number;
  /** Times LevelDB was closed and opened again in place to recover from a failed write. */
  readonly reopens: number;
}

const DEFAULT_CAP = 1024 ** 3;
const DEFAULT_BATCH_BYTES = 256 * 1024;
const DEFAULT_SYNC_MS = 100;
const DEFAULT_RETRY_MIN_MS = 250;
const DEFAULT_RETRY_MAX_MS = 5000;
/** A quick batch (see `#openBatch`) stops taking appends once it holds this many bytes. */
const QUICK_BATCH_BYTES = 64 * 1024;
const FOLLOW_PAGE = 2048;
/** A follow's replay page also stops at about this much output. */
const FOLLOW_PAGE_BYTES = 4 * 1024 ** 2;
const READ_HIGH_WATER_BYTES = 4 * 1024 ** 2;
const STATE_PAGE = 256;
/**
 * A stream's snapshot is rewritten with every batch that changes more than its output
 * counters, and otherwise at least this often, so that sustained output rarely touches a
 * rewritten key (see keys.ts); the output after a checkpoint is folded in again at open.
 */
const CHECKPOINT_BYTES = 64 * 1024 ** 2;
const CHECKPOINT_EVENTS = 100_000;
const EMPTY = new Uint8Array(0);
const ALL = indexPrefix();
const STATUSES: readonly ExecutionStatus[] = ['queued', 'running', 'finished'];

interface Snapshot {
  readonly state: ExecutionState;
  /** Output dropped by the cap and not yet reported by an OutputTruncated. */
  readonly pendingDropped: number;
}

/** What the store knows of one stream; `state` runs ahead of `written` by the appends in flight. */
interface StreamEntry {
  readonly name: string;
  readonly prefix: Buffer;
  readonly stateKey: Buffer;
  state: ExecutionState;
  pendingDropped: number;
  written: Snapshot | undefined;
  /** The state in the stream's snapshot key once the queued batches are written. */
  checkpoint: ExecutionState | undefined;
  durableSeq: number;
  unwritten: number;
  /** The batch of the stream's last append, until that batch is written. */
  lastBatch: GroupBatch | undefined;
  /** Where the stream sits in the list index once the queued batches are written. */
  indexed: { readonly requestedAt: number | null; readonly status: ExecutionStatus } | undefined;
}

/** The store cannot write: since when, why, and how its recovery goes. */
interface Failure {
  readonly error: TetherError;
  readonly since: number;
  retries: number;
  /** LevelDB was closed for a reopen that failed: reads fail too until one succeeds. */
  closed: boolean;
  timer: NodeJS.Timeout | undefined;
  /**
   * Streams whose rejected appends may have reached the disk: their requestedAt and the last
   * seq they had with the rejected appends.
   */
  readonly dirty: Map<StreamEntry, { requestedAt: number | null; lastSeq: number }>;
  readonly waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
}

type Operation = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** Appends that share one LevelDB write. */
class GroupBatch {
  readonly ops: Operation[] = [];
  /** Each stream's state after this batch. */
  readonly latest = new Map<StreamEntry, Snapshot>();
  /** The streams whose snapshot key this batch rewrites. */
  readonly checkpoints = new Set<StreamEntry>();
  readonly appends = new Map<StreamEntry, number>();
  readonly published: Array<readonly [StreamEntry, StoredEvent[]]> = [];
  bytes = 0;
  sync = false;
  /** In the queue, not yet taken by the pump. */
  queued = true;
  readonly done: Promise<void>;
  resolve!: () => void;
  reject!: (error: unknown) => void;

  /** A small batch queued ahead of the others (see `#openBatch`). */
  constructor(readonly quick = false) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => undefined); // the appends that wait on it report the failure
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.ops.push({ type: 'put', key, value });
    this.bytes += key.byteLength + value.byteLength;
  }

  del(key: Uint8Array): void {
    this.ops.push({ type: 'del', key });
    this.bytes += key.byteLength;
  }
}

const ignore = (): void => undefined;

/**
 * The EventStore on LevelDB (classic-level): one directory per store, used by one process at a
 * time. See the package README for the key layout and the durability design.
 *
 * ```ts
 * const store = await LevelEventStore.open('/var/lib/tether/events');
 * await store.append('exec-1', [{ type: 'ExecutionRequested', data: { spec } }]);
 * store.follow('exec-1').subscribe((event) => handle(event));
 * await store.close();
 * ```
 *
 * `append` returns the seqs actually written: when the output cap drops a whole append, nothing
 * is written and `lastSeq` is `firstSeq - 1`. Output bytes are written as given, without a copy
 * on the way: do not modify an appended `Uint8Array` afterwards.
 */
export class LevelEventStore implements EventStore {
  #db: StoreDatabase;
  readonly #dir: string;
  readonly #cap: number;
  readonly #batchBytes: number;
  readonly #syncMs: number;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #writeBufferBytes: number;

  readonly #entries = new Map<string, StreamEntry>();
  /** Per stream, appends waiting for the stream to load, in call order. */
  readonly #gates = new Map<string, Promise<void>>();
  readonly #live = new Map<string, Subject<StoredEvent>>();
  readonly #queue: GroupBatch[] = [];
  readonly #unsynced = new Set<StreamEntry>();
  readonly #appending = new Set<Promise<unknown>>();
  #writing = false;
  #pumpScheduled = false;
  #syncTimer: NodeJS.Timeout | undefined;
  /** The next batch made is written with sync (a sync was due while a write was in flight). */
  #syncNext = false;
  #failure: Failure | undefined;
  /** Set while LevelDB is closed and opened again; reads wait for it. */
  #reopening: Promise<void> | undefined;
  /** Reads and other LevelDB calls in flight (a reopen waits for them). */
  readonly #calls = new Set<Promise<unknown>>();
  #closing = false;
  #closed: Promise<void> | undefined;
  #stats = { appends: 0, writes: 0, syncWrites: 0, checkpoints: 0, writeFailures: 0, reopens: 0 };

  private constructor(db: StoreDatabase, dir: string, options: Required<LevelEventStoreOptions>) {
    this.#db = db;
    this.#dir = dir;
    this.#cap = options.maxOutputBytesPerExecution;
    this.#batchBytes = options.groupCommitBytes;
    this.#syncMs = options.syncIntervalMs;
    this.#retryMinMs = options.retryMinMs;
    this.#retryMaxMs = options.retryMaxMs;
    this.#writeBufferBytes = options.writeBufferBytes;
  }

  /**
   * Opens the store in `dir`, creating it if the directory is missing or empty.
   * @throws TetherError `STORE_LOCKED` if another process has it open, `STORE_CORRUPT` if the
   *   directory is damaged or not a tether store (it is then left untouched).
   */
  static async open(dir: string, options: LevelEventStoreOptions = {}): Promise<LevelEventStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TetherError('INVALID_ARGUMENT', 'the store directory must be a non-empty path');
    const resolved = {
      maxOutputBytesPerExecution: checkCount(options.maxOutputBytesPerExecution ?? DEFAULT_CAP, 'maxOutputBytesPerExecution', 0),
      groupCommitBytes: checkCount(options.groupCommitBytes ?? DEFAULT_BATCH_BYTES, 'groupCommitBytes', 1),
      syncIntervalMs: checkCount(options.syncIntervalMs ?? DEFAULT_SYNC_MS, 'syncIntervalMs', 1),
      retryMinMs: checkCount(options.retryMinMs ?? DEFAULT_RETRY_MIN_MS, 'retryMinMs', 1),
      retryMaxMs: checkCount(options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS, 'retryMaxMs', 1),
      writeBufferBytes: checkCount(options.writeBufferBytes ?? LEVEL_OPTIONS.writeBufferSize, 'writeBufferBytes', 64 * 1024),
    };
    const db = await openStoreDatabase(dir, resolved.writeBufferBytes);
    const store = new LevelEventStore(db, resolve(dir), resolved);
    try {
      await store.#recover();
    } catch (error) {
      await db.close().catch(ignore);
      throw error instanceof TetherError ? error : writeFailure(store.#dir, error);
    }
    return store;
  }

  /** The store's directory (absolute). */
  get location(): string {
    return this.#dir;
  }

  /** Counters since open (a copy). */
  get stats(): LevelEventStoreStats {
    return { ...this.#stats };
  }

  append(stream: string, events: readonly ExecutionEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    if (this.#closing) return Promise.reject(new TetherError('STORE_CLOSED'));
    if (this.#failure) return Promise.reject(this.#failure.error);
    try {
      checkStreamName(stream);
    } catch (error) {
      return Promise.reject(error);
    }
    const result = this.#inStreamOrder(stream, (entry) => this.#accept(entry, events, options ?? {}));
    this.#appending.add(result);
    const forget = () => this.#appending.delete(result);
    result.then(forget, forget);
    return result;
  }

  async read(stream: string, options: ReadOptions = {}): Promise<StoredEvent[]> {
    this.#assertOpen();
    checkStreamName(stream);
    const after = checkCount(options.afterSeq ?? 0, 'afterSeq', 0);
    const before = Math.min(checkCount(options.beforeSeq ?? MAX_SEQ, 'beforeSeq', 0), MAX_SEQ);
    const limit = options.limit === undefined ? -1 : checkCount(options.limit, 'limit', 0);
    const maxBytes = options.maxBytes === undefined ? Number.POSITIVE_INFINITY : checkCount(options.maxBytes, 'maxBytes', 1);
    if (limit === 0 || before <= after + 1) return [];
    const prefix = eventPrefix(stream);
    return this.#guard(async () => {
      // Bounded by the stream's key range on both sides, so a reverse read starts at the end.
      const iterator = this.#db.iterator({
        gte: eventKey(prefix, after + 1),
        lt: eventKey(prefix, before),
        reverse: options.reverse === true,
        limit,
        highWaterMarkBytes: READ_HIGH_WATER_BYTES,
      });
      const events: StoredEvent[] = [];
      let bytes = 0;
      try {
        // nextv stops at the iterator's highWaterMarkBytes too, so a page of large events
        // over-reads by at most that much past `maxBytes`.
        reading: for (;;) {
          const entries = await iterator.nextv(1000);
          if (entries.length === 0) break;
          for (const [key, value] of entries) {
            const event = decodeEvent(key, value);
            events.push(event);
            if (event.type === 'OutputProduced' && (bytes += event.data.data.byteLength) >= maxBytes) break reading;
          }
        }
      } finally {
        await iterator.close();
      }
      return events;
    });
  }

  follow(stream: string, afterSeq = 0): Observable<StoredEvent> {
    if (this.#closing) return throwError(() => new TetherError('STORE_CLOSED'));
    try {
      checkStreamName(stream);
      checkCount(afterSeq, 'afterSeq', 0);
    } catch (error) {
      return throwError(() => error);
    }
    if (this.#failure) return this.#followWhileFailed(stream, afterSeq);
    let live = this.#live.get(stream);
    if (!live) this.#live.set(stream, (live = new Subject<StoredEvent>()));
    const feed = live;
    return replayThenLive(afterSeq, (after) => this.read(stream, { afterSeq: after, limit: FOLLOW_PAGE, maxBytes: FOLLOW_PAGE_BYTES }), feed).pipe(
      finalize(() => {
        if (!feed.observed && this.#live.get(stream) === feed) this.#live.delete(stream);
      }),
    );
  }

  /**
   * A follow while the store cannot write: what is stored, then the end (after a terminal
   * event) or the store's failure; if writing resumed meanwhile, an ordinary follow from there.
   */
  #followWhileFailed(stream: string, afterSeq: number): Observable<StoredEvent> {
    return new Observable<StoredEvent>((subscriber) => {
      let last = afterSeq;
      let inner: Subscription | undefined;
      let stopped = false;
      void (async () => {
        for (;;) {
          const page = await this.read(stream, { afterSeq: last, limit: FOLLOW_PAGE, maxBytes: FOLLOW_PAGE_BYTES });
          if (stopped) return;
          if (page.length === 0) break;
          for (const event of page) {
            subscriber.next(event);
            last = event.seq;
            if (isTerminal(event)) return subscriber.complete();
          }
        }
        if (this.#failure) return subscriber.error(this.#failure.error);
        inner = this.follow(stream, last).subscribe(subscriber);
      })().catch((error: unknown) => subscriber.error(error));
      return () => {
        stopped = true;
        inner?.unsubscribe();
      };
    });
  }

  /**
   * Whether appends are taken now; after a failed write, `ok: false` with the error's code and
   * message, when it started and how many attempts to resume were made.
   */
  health(): StoreHealth {
    const failure = this.#failure;
    if (!failure) return { ok: true };
    const { code, message } = failure.error;
    return { ok: false, code: code === 'DISK_FULL' ? 'DISK_FULL' : 'STORE_WRITE_FAILED', message, dir: this.#dir, since: failure.since, retries: failure.retries };
  }

  /** Resolves once appends are taken again (at once when they are); rejects with `STORE_CLOSED` on close. */
  whenWritable(): Promise<void> {
    if (this.#closing) return Promise.reject(new TetherError('STORE_CLOSED'));
    const failure = this.#failure;
    if (!failure) return Promise.resolve();
    // Someone waits for the recovery: its timer keeps the process alive meanwhile.
    failure.timer?.ref();
    return new Promise((resolve, reject) => failure.waiters.push({ resolve, reject }));
  }

  async state(stream: string): Promise<ExecutionState | undefined> {
    this.#assertOpen();
    checkStreamName(stream);
    const entry = this.#entries.get(stream);
    if (entry) return entry.written?.state;
    return (await this.#guard(() => this.#readSnapshot(stream)))?.state;
  }

  async list(options: ListOptions = {}): Promise<ListPage> {
    this.#assertOpen();
    const limit = checkCount(options.limit ?? 100, 'limit', 1);
    if (options.status !== undefined && !STATUSES.includes(options.status)) {
      throw new TetherError('INVALID_ARGUMENT', `status must be one of ${STATUSES.join(', ')}`);
    }
    const prefix = indexPrefix(options.status);
    let from = prefix;
    if (options.cursor !== undefined) {
      const { requestedAt, id } = decodeListCursor(options.cursor);
      from = indexKey(prefix, requestedAt, id);
    }
    return this.#guard(async () => {
      const keys = await this.#db.keys({ gt: from, lt: prefixEnd(prefix), limit: limit + 1 }).all();
      const names = keys.slice(0, limit).map((key) => streamOfIndexKey(prefix, key));
      const snapshots = await this.#db.getMany(names.map(stateKey));
      // Streams appended to in this process are cached, and their snapshot may be a checkpoint behind.
      const items = snapshots.flatMap((value, i) => {
        const cached = this.#entries.get(names[i] ?? '')?.written?.state;
        return cached ? [cached] : value === undefined ? [] : [parseSnapshot(value).state];
      });
      const last = keys[limit - 1];
      if (keys.length <= limit || last === undefined) return { items };
      const cursorAt = { ...initialState(streamOfIndexKey(prefix, last)), requestedAt: requestedAtOfIndexKey(prefix, last) };
      return { items, cursor: encodeListCursor(cursorAt) };
    });
  }

  async durableSeq(stream: string): Promise<number> {
    this.#assertOpen();
    checkStreamName(stream);
    const entry = this.#entries.get(stream);
    if (entry) return entry.durableSeq;
    // Whatever is on disk when the store opens is durable (LevelDB's recovery writes the log it
    // recovers into a synced table, and the open recovery syncs), and entries leave the cache
    // only once durable.
    return (await this.#guard(() => this.#readSnapshot(stream)))?.state.lastSeq ?? 0;
  }

  /**
   * Removes finished executions (their events, state and index entries) by count and/or age;
   * an execution is removed if it falls outside either limit. Queued and running executions are
   * never touched.
   */
  async prune(options: PruneOptions): Promise<PruneResult> {
    this.#assertOpen();
    const keep = options?.keepFinished === undefined ? undefined : checkCount(options.keepFinished, 'keepFinished', 0);
    const age = options?.olderThanMs === undefined ? undefined : checkCount(options.olderThanMs, 'olderThanMs', 0);
    if (keep === undefined && age === undefined) throw new TetherError('INVALID_ARGUMENT', 'prune needs keepFinished and/or olderThanMs');
    const cutoff = age === undefined ? undefined : Date.now() - age;
    const finished = indexPrefix('finished');
    return this.#guard(async () => {
      const keys = await this.#db.keys({ gt: finished, lt: prefixEnd(finished) }).all();
      const doomed: ExecutionState[] = [];
      for (let page = 0; page < keys.length; page += STATE_PAGE) {
        const names = keys.slice(page, page + STATE_PAGE).map((key) => streamOfIndexKey(finished, key));
        const values = await this.#db.getMany(names.map(stateKey));
        values.forEach((value, i) => {
          const state = value === undefined ? undefined : parseSnapshot(value).state;
          if (state?.status !== 'finished') return;
          const byCount = keep !== undefined && page + i >= keep;
          const byAge = cutoff !== undefined && (state.finishedAt ?? state.requestedAt ?? 0) < cutoff;
          if (byCount || byAge) doomed.push(state);
        });
      }
      // Events first, then state and index: an interrupted prune leaves an execution that is
      // still listed as finished, and the next prune finishes the job.
      if (this.#failure) throw this.#failure.error;
      try {
        for (const state of doomed) {
          const prefix = eventPrefix(state.id);
          await this.#db.clear({ gte: eventKey(prefix, 0), lt: eventKey(prefix, MAX_SEQ) });
        }
        const ops: Operation[] = doomed.flatMap((state) => [
          { type: 'del' as const, key: stateKey(state.id) },
          { type: 'del' as const, key: indexKey(ALL, state.requestedAt, state.id) },
          { type: 'del' as const, key: indexKey(finished, state.requestedAt, state.id) },
        ]);
        if (ops.length > 0) await this.#db.batch(ops, { sync: true });
      } catch (error) {
        // A failed write may leave a torn record in LevelDB's log: nothing more is written to it.
        throw this.#enterFailure(error);
      }
      for (const state of doomed) this.#entries.delete(state.id);
      return { removed: doomed.map((s) => s.id), events: doomed.reduce((n, s) => n + s.lastSeq, 0) };
    });
  }

  /**
   * Writes what is pending, syncs it, completes followers with `STORE_CLOSED` and closes
   * LevelDB. Appends made before `close` are written; later calls fail with `STORE_CLOSED`.
   * Idempotent.
   */
  close(): Promise<void> {
    return (this.#closed ??= this.#shutdown());
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([...this.#appending]);
    clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    await this.#reopening?.catch(ignore);
    const failure = this.#failure;
    if (failure) {
      clearTimeout(failure.timer);
      for (const waiter of failure.waiters.splice(0)) waiter.reject(new TetherError('STORE_CLOSED'));
    } else {
      await this.#checkpointAll().catch(ignore);
    }
    for (const live of this.#live.values()) live.complete();
    this.#live.clear();
    await Promise.allSettled([...this.#calls]);
    if (!failure?.closed) await this.#db.close();
  }

  // --- appending -------------------------------------------------------------------------

  /** Runs `accept` for the stream's entry, loading it first; appends to a stream keep call order. */
  #inStreamOrder(stream: string, accept: (entry: StreamEntry) => Promise<AppendResult>): Promise<AppendResult> {
    const gate = this.#gates.get(stream);
    const entry = this.#entries.get(stream);
    if (gate === undefined && entry !== undefined) return accept(entry);
    // Wrapped so that the gate opens once this append is queued, not once it is written.
    const turn = (gate ?? Promise.resolve()).then(async () => ({
      written: accept(this.#entries.get(stream) ?? (await this.#load(stream))),
    }));
    const next = turn.then(ignore, ignore);
    this.#gates.set(stream, next);
    void next.then(() => {
      if (this.#gates.get(stream) === next) this.#gates.delete(stream);
    });
    return turn.then(({ written }) => written);
  }

  async #load(stream: string): Promise<StreamEntry> {
    const snapshot = await this.#guard(() => this.#readSnapshot(stream));
    const existing = this.#entries.get(stream);
    if (existing) return existing;
    const entry: StreamEntry = {
      name: stream,
      prefix: eventPrefix(stream),
      stateKey: stateKey(stream),
      state: snapshot?.state ?? initialState(stream),
      pendingDropped: snapshot?.pendingDropped ?? 0,
      written: snapshot,
      checkpoint: snapshot?.state,
      durableSeq: snapshot?.state.lastSeq ?? 0,
      unwritten: 0,
      lastBatch: undefined,
      indexed: snapshot ? { requestedAt: snapshot.state.requestedAt, status: snapshot.state.status } : undefined,
    };
    this.#entries.set(stream, entry);
    return entry;
  }

  /** Checks an append and queues it in the open group batch; resolves once that batch is written. */
  #accept(entry: StreamEntry, events: readonly ExecutionEvent[], options: AppendOptions): Promise<AppendResult> {
    // A failure may have come while this append waited for its stream to load.
    if (this.#failure) return Promise.reject(this.#failure.error);
    if (this.#closing) return Promise.reject(new TetherError('STORE_CLOSED'));
    try {
      checkAppend(entry.name, events, entry.state.lastSeq, entry.state, options);
    } catch (error) {
      return Promise.reject(error);
    }
    const before = { state: entry.state, pendingDropped: entry.pendingDropped };
    const capped = applyOutputCap(
      events,
      { recordedBytes: outputBytes(before.state), truncating: before.state.truncatedBytes > 0, pendingDropped: before.pendingDropped },
      this.#cap,
    );
    const stored = stampEvents(capped.events, before.state.lastSeq);
    let state = before.state;
    for (const event of stored) state = evolve(state, event);
    entry.state = state;
    entry.pendingDropped = capped.pendingDropped;
    const batch = this.#openBatch(entry);
    entry.unwritten++;
    entry.lastBatch = batch;

    for (const event of stored) {
      const { key, value } = encodeEvent(entry.prefix, event);
      batch.put(key, value);
    }
    this.#queueIndexMove(batch, entry);
    batch.latest.set(entry, { state, pendingDropped: capped.pendingDropped });
    const checkpoint = entry.checkpoint;
    const due =
      checkpoint === undefined ||
      batch.checkpoints.has(entry) ||
      capped.pendingDropped !== before.pendingDropped ||
      stored.length === 0 ||
      stored.some((event) => event.type !== 'OutputProduced') ||
      state.lastSeq - checkpoint.lastSeq >= CHECKPOINT_EVENTS ||
      outputBytes(state) - outputBytes(checkpoint) >= CHECKPOINT_BYTES;
    if (due) {
      batch.checkpoints.add(entry);
      entry.checkpoint = state;
    }
    batch.appends.set(entry, (batch.appends.get(entry) ?? 0) + 1);
    if (stored.length > 0) batch.published.push([entry, stored]);
    if (stored.some(needsSync)) batch.sync = true;
    this.#stats.appends++;
    this.#schedulePump();
    const result = { firstSeq: before.state.lastSeq + 1, lastSeq: state.lastSeq };
    return batch.done.then(() => result);
  }

  #queueIndexMove(batch: GroupBatch, entry: StreamEntry): void {
    const { requestedAt, status } = entry.state;
    const old = entry.indexed;
    if (old && old.requestedAt === requestedAt && old.status === status) return;
    if (old) {
      batch.del(indexKey(ALL, old.requestedAt, entry.name));
      batch.del(indexKey(indexPrefix(old.status), old.requestedAt, entry.name));
    }
    batch.put(indexKey(ALL, requestedAt, entry.name), EMPTY);
    batch.put(indexKey(indexPrefix(status), requestedAt, entry.name), EMPTY);
    entry.indexed = { requestedAt, status };
  }

  /**
   * The batch an append joins. Order only matters within a stream, so a stream with nothing
   * queued goes into a quick batch at the front of the queue, and a stream whose last append is
   * in a quick batch joins it while it is small: a quiet execution's request, start and exit
   * wait for the write in flight and one small write, not behind megabytes of another
   * execution's output. Everything else joins the last queued batch until it holds
   * `groupCommitBytes`.
   */
  #openBatch(entry: StreamEntry): GroupBatch {
    const last = entry.lastBatch?.queued ? entry.lastBatch : undefined;
    if (last === undefined) {
      const head = this.#queue[0];
      if (head?.quick && head.bytes < QUICK_BATCH_BYTES) return head;
      return this.#newBatch(true);
    }
    if (last.quick && last.bytes < QUICK_BATCH_BYTES) return last;
    const tail = this.#queue.at(-1);
    if (tail && !tail.quick && tail.bytes < this.#batchBytes) return tail;
    return this.#newBatch(false);
  }

  #newBatch(quick: boolean): GroupBatch {
    const batch = new GroupBatch(quick);
    batch.sync = this.#syncNext;
    this.#syncNext = false;
    if (quick) this.#queue.unshift(batch);
    else this.#queue.push(batch);
    return batch;
  }

  #schedulePump(): void {
    if (this.#writing || this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    // A microtask later, so that appends made in the same tick share the first write.
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      void this.#pump();
    });
  }

  /** One write at a time, in queue order: while it is in flight, the next batch fills up. */
  async #pump(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      for (let batch = this.#queue.shift(); batch; batch = this.#queue.shift()) {
        batch.queued = false;
        await this.#write(batch);
      }
    } finally {
      this.#writing = false;
    }
  }

  async #write(batch: GroupBatch): Promise<void> {
    if (this.#failure) return this.#rejectQueued(batch, this.#failure.error);
    const ops = batch.ops;
    for (const entry of batch.checkpoints) {
      const snapshot = batch.latest.get(entry);
      if (snapshot) ops.push({ type: 'put', key: entry.stateKey, value: encodeSnapshot(snapshot) });
    }
    const checkpoints = batch.checkpoints.size;
    try {
      await this.#db.batch(ops, { sync: batch.sync });
    } catch (error) {
      this.#fail(error, batch);
      return;
    }
    const failedMeanwhile = this.#failure as Failure | undefined; // set by another write during the await
    if (failedMeanwhile) {
      // Another write (a prune) failed meanwhile: this one may sit behind a torn record in the
      // log, which the reopen would drop, so it is not acknowledged (and its events are removed).
      return this.#rejectQueued(batch, failedMeanwhile.error);
    }
    this.#stats.writes++;
    this.#stats.checkpoints += checkpoints;
    for (const [entry, snapshot] of batch.latest) {
      entry.written = snapshot;
      this.#unsynced.add(entry);
    }
    for (const [entry, count] of batch.appends) {
      entry.unwritten -= count;
      if (entry.lastBatch === batch) entry.lastBatch = undefined;
    }
    if (batch.sync) {
      // A sync write fsyncs LevelDB's log, and with it every write before it.
      this.#stats.syncWrites++;
      for (const entry of this.#unsynced) entry.durableSeq = entry.written?.state.lastSeq ?? entry.durableSeq;
      this.#unsynced.clear();
      clearTimeout(this.#syncTimer);
      this.#syncTimer = undefined;
    } else {
      this.#armSyncTimer();
    }
    batch.resolve();
    for (const [entry, events] of batch.published) {
      const live = this.#live.get(entry.name);
      if (!live) continue;
      for (const event of events) live.next(event);
      // Nothing follows a terminal event; later followers replay it from the store.
      if (isTerminal(events[events.length - 1]!)) this.#live.delete(entry.name);
    }
    for (const entry of batch.latest.keys()) {
      const idle =
        entry.unwritten === 0 && entry.checkpoint === entry.state && entry.durableSeq === entry.state.lastSeq && !this.#gates.has(entry.name);
      if (idle && entry.state.status === 'finished' && this.#entries.get(entry.name) === entry) this.#entries.delete(entry.name);
    }
  }

  #armSyncTimer(): void {
    if (this.#syncTimer !== undefined || this.#closing) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      if (this.#unsynced.size === 0 || this.#failure) return;
      const tail = this.#queue.at(-1);
      if (tail) {
        tail.sync = true;
      } else if (this.#writing) {
        // Output is flowing: the next batch carries the sync, rather than a write of the sync key
        // in the middle of it (see keys.ts); if none comes, the next tick writes the key.
        this.#syncNext = true;
        this.#armSyncTimer();
      } else {
        this.#syncBatch().done.catch(ignore);
      }
    }, this.#syncMs);
    this.#syncTimer.unref();
  }

  /** Queues a sync write of the (empty) sync key: LevelDB writes nothing for an empty batch. */
  #syncBatch(): GroupBatch {
    const batch = new GroupBatch();
    batch.put(SYNC_KEY, EMPTY);
    batch.sync = true;
    this.#syncNext = false;
    this.#queue.push(batch);
    this.#schedulePump();
    return batch;
  }

  /** Writes the snapshot of every stream whose snapshot is a checkpoint behind, with sync. */
  async #checkpointAll(): Promise<void> {
    const lagging = [...this.#entries.values()].filter((e) => e.checkpoint !== e.state && e.unwritten === 0 && e.written);
    if (lagging.length === 0 && this.#unsynced.size === 0) return;
    const batch = this.#syncBatch();
    for (const entry of lagging) {
      batch.latest.set(entry, entry.written!);
      batch.checkpoints.add(entry);
      entry.checkpoint = entry.state;
    }
    await batch.done;
  }

  /**
   * Brings the snapshots of queued and running streams up to date with their events: after a
   * crash, the output written since a stream's last checkpoint is folded in again.
   */
  async #recover(): Promise<void> {
    const ops: Operation[] = [];
    for (const status of ['queued', 'running'] as const) {
      const prefix = indexPrefix(status);
      const keys = await this.#db.keys({ gt: prefix, lt: prefixEnd(prefix) }).all();
      for (const key of keys) {
        const name = streamOfIndexKey(prefix, key);
        const snapshot = await this.#readSnapshot(name);
        if (!snapshot) continue;
        let state = snapshot.state;
        for (;;) {
          const page = await this.read(name, { afterSeq: state.lastSeq, limit: FOLLOW_PAGE, maxBytes: FOLLOW_PAGE_BYTES });
          if (page.length === 0) break;
          for (const event of page) state = evolve(state, event);
        }
        if (state !== snapshot.state) ops.push({ type: 'put', key: stateKey(name), value: encodeSnapshot({ ...snapshot, state }) });
      }
    }
    if (ops.length > 0) await this.#db.batch(ops, { sync: true });
  }

  /**
   * A batch write failed. LevelDB may have left a torn record at the end of its log, and a
   * later write to the same log can be dropped when the log is replayed (seen on a full
   * tmpfs: the write after freeing space succeeded, then vanished at the next open). So nothing
   * more is written through this handle: the failed batch and every queued one are rejected,
   * the streams they touched fall back to what was written, and the store recovers by closing
   * and reopening LevelDB in place once there is room (see `#recoverFromFailure`).
   */
  #fail(error: unknown, batch: GroupBatch): void {
    this.#rejectQueued(batch, this.#enterFailure(error));
  }

  /** Rejects `batch` and every queued batch; the streams they touched go back to what was written. */
  #rejectQueued(batch: GroupBatch, failed: TetherError): void {
    for (const rejected of [batch, ...this.#queue.splice(0)]) {
      rejected.queued = false;
      for (const entry of rejected.latest.keys()) this.#rollBack(entry);
      rejected.reject(failed);
    }
  }

  /** Puts the store in its failed state (once) and schedules the recovery; returns the error. */
  #enterFailure(error: unknown): TetherError {
    this.#stats.writeFailures++;
    if (this.#failure) return this.#failure.error;
    const failed = writeFailure(this.#dir, error);
    this.#failure = { error: failed, since: Date.now(), retries: 0, closed: false, timer: undefined, dirty: new Map(), waiters: [] };
    clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    this.#syncNext = false;
    // Live followers would otherwise wait in silence: they get the error, and a new follow
    // replays what is stored, then gets it too (or the end, for a finished execution).
    for (const live of this.#live.values()) live.error(failed);
    this.#live.clear();
    this.#scheduleRecovery();
    return failed;
  }

  /** A stream whose unwritten appends were rejected goes back to its last written state. */
  #rollBack(entry: StreamEntry): void {
    const failure = this.#failure!;
    const seen = failure.dirty.get(entry);
    if (entry.state.lastSeq > (seen?.lastSeq ?? -1)) failure.dirty.set(entry, { requestedAt: seen?.requestedAt ?? entry.state.requestedAt, lastSeq: entry.state.lastSeq });
    const written = entry.written;
    entry.state = written?.state ?? initialState(entry.name);
    entry.pendingDropped = written?.pendingDropped ?? 0;
    entry.checkpoint = undefined; // rewritten by the recovery
    entry.indexed = written ? { requestedAt: written.state.requestedAt, status: written.state.status } : undefined;
    entry.unwritten = 0;
    entry.lastBatch = undefined;
  }

  #scheduleRecovery(): void {
    const failure = this.#failure;
    if (!failure || this.#closing) return;
    const wait = Math.min(this.#retryMinMs * 2 ** Math.min(failure.retries, 20), this.#retryMaxMs);
    failure.timer = setTimeout(() => {
      failure.timer = undefined;
      void this.#recoverFromFailure(failure);
    }, wait);
    if (failure.waiters.length === 0) failure.timer.unref();
  }

  /**
   * One attempt to resume writing: once the filesystem has room for LevelDB to replay its log,
   * close LevelDB and open it again in place (the replay turns the log into a table and starts a
   * new log, leaving any torn record behind), remove whatever of the rejected appends reached
   * the disk, and take appends again. Reads wait for the few milliseconds of the reopen.
   */
  async #recoverFromFailure(failure: Failure): Promise<void> {
    if (this.#closing || this.#failure !== failure) return;
    failure.retries++;
    try {
      if (failure.error.code === 'DISK_FULL' && !(await hasRoomToReopen(this.#dir))) return this.#scheduleRecovery();
    } catch {
      return this.#scheduleRecovery();
    }
    if (this.#closing) return;
    let done!: () => void;
    this.#reopening = new Promise<void>((resolve) => (done = resolve));
    try {
      await Promise.allSettled([...this.#calls]);
      if (!failure.closed) {
        failure.closed = true;
        await this.#db.close();
      }
      this.#db = await openStoreDatabase(this.#dir, this.#writeBufferBytes);
      failure.closed = false;
      this.#stats.reopens++;
      await this.#db.batch(this.#cleanUpRejected(failure), { sync: true });
      for (const entry of failure.dirty.keys()) entry.checkpoint = entry.written?.state;
      failure.dirty.clear();
    } catch {
      done();
      this.#reopening = undefined;
      // Still no room (or the cleanup write failed): LevelDB stays open for reads if it is.
      return this.#scheduleRecovery();
    }
    // The reopen wrote the log into a synced table: everything written is durable now.
    for (const entry of this.#entries.values()) entry.durableSeq = entry.written?.state.lastSeq ?? 0;
    this.#unsynced.clear();
    this.#failure = undefined;
    done();
    this.#reopening = undefined;
    for (const waiter of failure.waiters.splice(0)) waiter.resolve();
  }

  /**
   * The writes that put back the streams whose appends were rejected: a rejected batch may still
   * have reached the log, so its events past the last written seq are deleted and the snapshot
   * and index entries are those of the written state.
   */
  #cleanUpRejected(failure: Failure): Operation[] {
    const ops: Operation[] = [{ type: 'put', key: SYNC_KEY, value: EMPTY }];
    for (const [entry, rejected] of failure.dirty) {
      const written = entry.written;
      const requestedAt = rejected.requestedAt;
      // The rejected events had the seqs after the last written one; deleting them one by one
      // is cheap (the output in flight per execution is bounded) and atomic with the rest.
      for (let seq = (written?.state.lastSeq ?? 0) + 1; seq <= rejected.lastSeq; seq++) ops.push({ type: 'del', key: eventKey(entry.prefix, seq) });
      for (const at of new Set([requestedAt, written?.state.requestedAt ?? null])) {
        ops.push({ type: 'del', key: indexKey(ALL, at, entry.name) });
        for (const status of STATUSES) ops.push({ type: 'del', key: indexKey(indexPrefix(status), at, entry.name) });
      }
      if (written) {
        ops.push({ type: 'put', key: entry.stateKey, value: encodeSnapshot(written) });
        ops.push({ type: 'put', key: indexKey(ALL, written.state.requestedAt, entry.name), value: EMPTY });
        ops.push({ type: 'put', key: indexKey(indexPrefix(written.state.status), written.state.requestedAt, entry.name), value: EMPTY });
      } else {
        ops.push({ type: 'del', key: entry.stateKey });
      }
    }
    return ops;
  }

  // --- helpers -----------------------------------------------------------------------------

  async #readSnapshot(stream: string): Promise<Snapshot | undefined> {
    const value = await this.#db.get(stateKey(stream));
    return value === undefined ? undefined : parseSnapshot(value);
  }

  #assertOpen(): void {
    if (this.#closing) throw new TetherError('STORE_CLOSED');
  }

  /**
   * Runs a LevelDB call, turning its failures into tether errors. Waits while LevelDB is being
   * reopened after a failed write; a reopen waits for the calls in flight.
   */
  async #guard<T>(run: () => Promise<T>): Promise<T> {
    while (this.#reopening) await this.#reopening;
    if (this.#failure?.closed) throw this.#failure.error;
    const call = run();
    this.#calls.add(call);
    try {
      return await call;
    } catch (error) {
      if (error instanceof TetherError) throw error;
      if (this.#closing) throw new TetherError('STORE_CLOSED', undefined, {}, { cause: error });
      throw new TetherError('INTERNAL', `The event store at ${this.#dir} failed: ${(error as Error)?.message}`, { dir: this.#dir }, { cause: error });
    } finally {
      this.#calls.delete(call);
    }
  }
}

function checkStreamName(stream: unknown): asserts stream is string {
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 256) {
    throw new TetherError('INVALID_ARGUMENT', 'a stream name is a non-empty string of at most 256 characters');
  }
}

function checkCount(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new TetherError('INVALID_ARGUMENT', `${name} must be an integer of at least ${min}`);
  }
  return value;
}

function outputBytes(state: ExecutionState): number {
  return state.bytes.stdout + state.bytes.stderr + state.bytes.pty;
}

function encodeSnapshot(snapshot: Snapshot): Buffer {
  return Buffer.from(JSON.stringify(snapshot), 'utf8');
}

function parseSnapshot(value: Uint8Array): Snapshot {
  try {
    const snapshot = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8')) as Snapshot;
    if (typeof snapshot?.state?.id === 'string' && typeof snapshot.pendingDropped === 'number') return snapshot;
  } catch {
    // reported below
  }
  throw new TetherError('STORE_CORRUPT', 'a stream state snapshot in the event store is damaged');
}
