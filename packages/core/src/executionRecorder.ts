import { TetherError, isTetherError } from './errors.js';
import type { ExecutionEvent } from './events.js';
import type { AppendResult, EventStore } from './eventStore.js';

/** A store failure that passes once the store writes again (its disk had no room, an I/O error). */
export function isStoreWriteFailure(error: unknown): error is TetherError {
  return isTetherError(error, 'DISK_FULL') || isTetherError(error, 'STORE_WRITE_FAILED');
}

/**
 * The store's write failure, if it has one now: for a writer to refuse before it acts (a stdin
 * write that could not be recorded is not made).
 */
export function storeWriteFailure(store: EventStore): TetherError | undefined {
  const health = store.health?.();
  if (!health || health.ok) return undefined;
  return new TetherError(health.code, health.message, { ...(health.dir === undefined ? {} : { dir: health.dir }), since: health.since });
}

interface Pending {
  readonly events: readonly ExecutionEvent[];
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;

/**
 * Records the events of one running execution, in call order, through a store whose writes may
 * fail for a while (a full disk). An append the store refuses with `DISK_FULL` or
 * `STORE_WRITE_FAILED` is not dropped: it and every later one are held, in order, and appended
 * again once the store takes appends (`whenWritable`, else a backoff of 250 ms doubling to
 * 5 s). Each `append` resolves once its events are written, so a caller that bounds what is in
 * flight (the output back-pressure) pauses the process meanwhile instead of buffering without
 * end. Any other failure (the store closed) rejects that append.
 */
export class ExecutionRecorder {
  readonly #store: EventStore;
  readonly #stream: string;
  /** Appends not written yet, in call order (submitted or held). */
  readonly #pending: Pending[] = [];
  #inFlight = 0;
  #holding = false;
  #draining = false;
  #failedRetries = 0;
  #heldSignal: { promise: Promise<void>; resolve: () => void } = signal();

  constructor(store: EventStore, stream: string) {
    this.#store = store;
    this.#stream = stream;
  }

  /** True while appends are held because the store cannot write. */
  get holding(): boolean {
    return this.#holding;
  }

  append(events: readonly ExecutionEvent[]): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => {
      const item = { events, resolve, reject };
      this.#pending.push(item);
      if (!this.#holding) this.#submit(item);
    });
  }

  /**
   * Resolves when `written` does, or as soon as the recorder holds appends (the events will be
   * written once the store recovers): for callers that must not wait for a disk to be freed.
   */
  writtenOrHeld(written: Promise<unknown>): Promise<void> {
    const settled = written.then(() => undefined);
    settled.catch(() => undefined); // a failure after the hold began is the appender's to see
    if (this.#holding) return Promise.resolve();
    return Promise.race([settled, this.#heldSignal.promise]);
  }

  #submit(item: Pending): void {
    this.#inFlight++;
    this.#store.append(this.#stream, item.events).then(
      (result) => {
        this.#inFlight--;
        this.#failedRetries = 0;
        this.#remove(item);
        item.resolve(result);
        this.#drainWhenSettled();
      },
      (error: unknown) => {
        this.#inFlight--;
        if (isStoreWriteFailure(error)) {
          // Every later append of this stream was refused too (the store rejects all it holds
          // once a write fails), so holding them all keeps the order.
          if (!this.#holding) {
            this.#holding = true;
            this.#heldSignal.resolve();
          }
        } else {
          this.#remove(item);
          item.reject(error);
        }
        this.#drainWhenSettled();
      },
    );
  }

  #remove(item: Pending): void {
    const at = this.#pending.indexOf(item);
    if (at !== -1) this.#pending.splice(at, 1);
  }

  /** Once nothing is in flight, waits for the store to write again and submits what is held. */
  #drainWhenSettled(): void {
    if (!this.#holding || this.#inFlight > 0 || this.#draining) return;
    this.#draining = true;
    void this.#waitForStore().then(
      () => {
        this.#draining = false;
        this.#holding = false;
        this.#heldSignal = signal();
        for (const item of [...this.#pending]) this.#submit(item);
      },
      (error: unknown) => {
        // The store closed: what is held cannot be written by this process (a restart marks it).
        this.#draining = false;
        for (const item of this.#pending.splice(0)) item.reject(error);
      },
    );
  }

  async #waitForStore(): Promise<void> {
    const health = this.#store.health?.();
    if (health && !health.ok && this.#store.whenWritable) {
      await this.#store.whenWritable();
      return;
    }
    // A store that reports no failure (or cannot tell) refused the write: back off before retrying.
    const ms = Math.min(RETRY_MIN_MS * 2 ** Math.min(this.#failedRetries++, 10), RETRY_MAX_MS);
    await new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
  }
}

function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
