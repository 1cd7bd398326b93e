import { TetherError } from '../errors.js';
import type { Channel } from '../transport.js';

/**
 * The bytes one connection may have on their way to its peer: what the channel holds unsent
 * (`bufferedAmount`) plus what is reserved for replies and follow frames being built. Work that
 * makes a large message first reserves its size here and waits, in order of arrival, until it
 * fits; a peer that does not read therefore costs at most `limit` bytes (plus the one message a
 * waiter may be granted when the channel is empty), however many requests and follows it has.
 *
 * The channel says nothing when it drains, so waiters are checked on a short timer that runs
 * only while someone waits.
 */
export class SendBudget {
  readonly #channel: Channel;
  readonly limit: number;
  readonly #pollMs: number;
  #reserved = 0;
  #waiters: Array<{ readonly bytes: number; readonly grant: () => void; readonly fail: (error: TetherError) => void }> = [];
  #drainWaiters: Array<() => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(channel: Channel, limit: number, pollMs = 5) {
    this.#channel = channel;
    this.limit = limit;
    this.#pollMs = pollMs;
  }

  /** Bytes unsent or reserved. */
  get unsent(): number {
    return this.#channel.bufferedAmount + this.#reserved;
  }

  /** True once the unsent and reserved bytes reach the limit. */
  get full(): boolean {
    return this.unsent >= this.limit;
  }

  /**
   * Resolves with a release function once `bytes` (at most `limit`) fit in the budget. Call the
   * release right after the message was handed to the channel (or given up). Rejects with
   * `CONNECTION_LOST` when the budget is closed first.
   */
  reserve(bytes: number): Promise<() => void> {
    const size = Math.max(0, Math.min(bytes, this.limit));
    if (this.#closed) return Promise.reject(lost());
    if (this.#waiters.length === 0 && this.#fits(size)) return Promise.resolve(this.#take(size));
    return new Promise((resolve, reject) => {
      this.#waiters.push({ bytes: size, grant: () => resolve(this.#take(size)), fail: reject });
      this.#schedule();
    });
  }

  /** Calls `callback` once the unsent bytes are at most half the limit (at once if they are). */
  whenDrained(callback: () => void): void {
    if (this.#closed) return;
    if (this.unsent <= this.limit / 2) return void queueMicrotask(callback);
    this.#drainWaiters.push(callback);
    this.#schedule();
  }

  /** Fails every waiter and stops the timer; later reservations fail at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const waiter of this.#waiters.splice(0)) waiter.fail(lost());
    this.#drainWaiters = [];
  }

  #fits(size: number): boolean {
    // A message as large as the whole budget goes out alone, once everything else has left.
    return this.unsent + size <= this.limit || this.unsent === 0;
  }

  #take(size: number): () => void {
    this.#reserved += size;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#reserved -= size;
      if (this.#waiters.length > 0 || this.#drainWaiters.length > 0) this.#check();
    };
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#check();
    }, this.#pollMs);
  }

  #check(): void {
    if (this.#closed) return;
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0]!.bytes)) this.#waiters.shift()!.grant();
    if (this.#drainWaiters.length > 0 && this.unsent <= this.limit / 2) {
      for (const callback of this.#drainWaiters.splice(0)) callback();
    }
    if (this.#waiters.length > 0 || this.#drainWaiters.length > 0) this.#schedule();
  }
}

/**
 * At most `size` holders at once, served in order of arrival: how many store pages a
 * connection's follows read at the same time (each page is held twice while it is framed).
 */
export class Slots {
  #free: number;
  #waiters: Array<{ readonly grant: () => void; readonly fail: (error: TetherError) => void }> = [];
  #closed = false;

  constructor(size: number) {
    this.#free = size;
  }

  /** Resolves with a release function once a slot is free; rejects with `CONNECTION_LOST` once closed. */
  acquire(): Promise<() => void> {
    if (this.#closed) return Promise.reject(lost());
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(this.#release());
    }
    return new Promise((resolve, reject) => this.#waiters.push({ grant: () => resolve(this.#release()), fail: reject }));
  }

  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.fail(lost());
  }

  #release(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next.grant();
      else this.#free++;
    };
  }
}

function lost(): TetherError {
  return new TetherError('CONNECTION_LOST', 'the connection closed');
}
