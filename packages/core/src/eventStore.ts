import type { InjectionToken } from 'tsyringe';
import type { Observable } from 'rxjs';
import type { ExecutionEvent, StoredEvent } from './events.js';
import type { ExecutionState, ExecutionStatus } from './state.js';

export interface AppendOptions {
  /**
   * The stream's last seq as the caller last saw it (0: the stream must not exist yet).
   * If the stream has moved on, the append fails with `APPEND_CONFLICT` and writes nothing.
   */
  readonly expectedSeq?: number;
}

export interface AppendResult {
  /** Seq of the first and last event written by this append. */
  readonly firstSeq: number;
  readonly lastSeq: number;
}

export interface ReadOptions {
  /** Only events with a seq greater than this. Default 0. */
  readonly afterSeq?: number;
  /** Only events with a seq smaller than this (useful with `reverse` to page backwards). */
  readonly beforeSeq?: number;
  /** At most this many events. Default: all. */
  readonly limit?: number;
  /** Newest first. Stores must serve this without scanning from seq 1 (O(tail)). */
  readonly reverse?: boolean;
  /**
   * Stop after the event whose output brings the page's output bytes to this many (so at
   * least one event comes back): bounds a page of large output events. Default: no bound.
   */
  readonly maxBytes?: number;
}

export interface ListOptions {
  readonly status?: ExecutionStatus;
  /** Default 100. */
  readonly limit?: number;
  /** Opaque cursor from a previous page's `cursor`. */
  readonly cursor?: string;
}

export interface ListPage {
  /** Newest first (by request time). */
  readonly items: readonly ExecutionState[];
  /** Present when more items follow. */
  readonly cursor?: string;
}

/** Whether a store takes appends now (`EventStore.health`). */
export type StoreHealth =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** `DISK_FULL` or `STORE_WRITE_FAILED`. */
      readonly code: 'DISK_FULL' | 'STORE_WRITE_FAILED';
      readonly message: string;
      /** The store's directory, where space must be freed. */
      readonly dir?: string;
      /** When the first write failed (ms since the epoch). */
      readonly since: number;
      /** Attempts to resume writing so far. */
      readonly retries: number;
    };

/**
 * Append-only event streams, one per execution id; seq is contiguous from 1 per stream.
 *
 * Guarantees every implementation keeps (the contract suite in `@tether/core/testing` checks them):
 * - appends to one stream are applied in call order, each atomically (all of its events or none);
 * - an append resolves only once its events are readable and would survive a crash of this
 *   process; events that `needsSync` (request, start, terminal) are also on stable storage
 *   (fsync) by then, while output may be group-committed and reach stable storage a little
 *   later (see `durableSeq`);
 * - `follow` replays then goes live with no gap and no duplicate, even while appends race it.
 */
export interface EventStore {
  append(stream: string, events: readonly ExecutionEvent[], options?: AppendOptions): Promise<AppendResult>;
  read(stream: string, options?: ReadOptions): Promise<StoredEvent[]>;
  /**
   * Every event after `afterSeq` (default 0), then each new one as it is appended. Completes
   * after a terminal event; errors with `STORE_CLOSED` if the store closes first.
   */
  follow(stream: string, afterSeq?: number): Observable<StoredEvent>;
  /** The folded state of a stream, or undefined if it has no events. */
  state(stream: string): Promise<ExecutionState | undefined>;
  list(options?: ListOptions): Promise<ListPage>;
  /**
   * Highest seq of `stream` known to be on stable storage (survives power loss, not just a
   * process crash). Equals the last seq once the group commit has flushed.
   */
  durableSeq(stream: string): Promise<number>;
  /**
   * Whether appends are taken now. A store whose writes can fail for lack of space (or another
   * I/O error) reports it here: until it has recovered, every append fails with that code
   * (`DISK_FULL`, `STORE_WRITE_FAILED`) and writes nothing, reads keep working, and live
   * followers get the error (an execution's events after it come once writing resumes). A store
   * without the method never fails this way.
   */
  health?(): StoreHealth;
  /**
   * Resolves once the store takes appends again after such a failure (at once when it does;
   * rejects with `STORE_CLOSED` if it closes first). The store retries by itself.
   */
  whenWritable?(): Promise<void>;
  close(): Promise<void>;
}
export const EventStore: InjectionToken<EventStore> = Symbol.for('tether.EventStore');
