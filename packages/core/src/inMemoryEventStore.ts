import { Subject, throwError, type Observable } from 'rxjs';
import { TetherError } from './errors.js';
import type { ExecutionEvent, StoredEvent } from './events.js';
import type { AppendOptions, AppendResult, EventStore, ListOptions, ListPage, ReadOptions } from './eventStore.js';
import { replayThenLive } from './follow.js';
import { evolve, initialState, type ExecutionState } from './state.js';
import { checkAppend, listPage, sliceRead, stampEvents } from './storeSupport.js';

interface MemoryStream {
  readonly events: StoredEvent[];
  state: ExecutionState;
}

/** A complete EventStore in memory: for tests, embedding without persistence, and as the reference. */
export class InMemoryEventStore implements EventStore {
  readonly #streams = new Map<string, MemoryStream>();
  /** Live feeds by stream; created on first follow or append, so a follower may wait for a stream to appear. */
  readonly #live = new Map<string, Subject<StoredEvent>>();
  #closed = false;

  async append(stream: string, events: readonly ExecutionEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    this.#assertOpen();
    const existing = this.#streams.get(stream);
    const lastSeq = existing?.state.lastSeq ?? 0;
    checkAppend(stream, events, lastSeq, existing?.state, options);
    const entry: MemoryStream = existing ?? { events: [], state: initialState(stream) };
    if (!existing) this.#streams.set(stream, entry);
    const stored = stampEvents(events, lastSeq);
    for (const event of stored) {
      entry.events.push(event);
      entry.state = evolve(entry.state, event);
    }
    const live = this.#live.get(stream);
    if (live) for (const event of stored) live.next(event);
    return { firstSeq: lastSeq + 1, lastSeq: lastSeq + stored.length };
  }

  async read(stream: string, options: ReadOptions = {}): Promise<StoredEvent[]> {
    this.#assertOpen();
    return sliceRead(this.#streams.get(stream)?.events ?? [], options);
  }

  follow(stream: string, afterSeq = 0): Observable<StoredEvent> {
    if (this.#closed) return throwError(() => new TetherError('STORE_CLOSED'));
    let live = this.#live.get(stream);
    if (!live) this.#live.set(stream, (live = new Subject()));
    return replayThenLive(afterSeq, (after) => this.read(stream, { afterSeq: after, limit: 1024, maxBytes: 4 * 1024 * 1024 }), live);
  }

  async state(stream: string): Promise<ExecutionState | undefined> {
    this.#assertOpen();
    return this.#streams.get(stream)?.state;
  }

  async list(options: ListOptions = {}): Promise<ListPage> {
    this.#assertOpen();
    return listPage([...this.#streams.values()].map((s) => s.state), options);
  }

  async durableSeq(stream: string): Promise<number> {
    this.#assertOpen();
    return this.#streams.get(stream)?.state.lastSeq ?? 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const live of this.#live.values()) live.complete();
  }

  #assertOpen(): void {
    if (this.#closed) throw new TetherError('STORE_CLOSED');
  }
}
