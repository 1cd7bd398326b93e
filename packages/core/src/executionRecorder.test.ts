import { describe, expect, it } from 'vitest';
import { TetherError } from './errors.js';
import type { ExecutionEvent } from './events.js';
import type { AppendOptions, AppendResult, StoreHealth } from './eventStore.js';
import { ExecutionRecorder } from './executionRecorder.js';
import { InMemoryEventStore } from './inMemoryEventStore.js';

const requested: ExecutionEvent = { type: 'ExecutionRequested', data: { spec: { command: 'x', envMode: 'merge', stdin: false, killGraceMs: 3000 } } };
const out = (text: string): ExecutionEvent => ({ type: 'OutputProduced', data: { stream: 'stdout', data: new TextEncoder().encode(text) } });

/** An in-memory store whose disk can be "full": it then refuses every append, as LevelEventStore does. */
class FillableStore extends InMemoryEventStore {
  full: 'DISK_FULL' | 'STORE_WRITE_FAILED' | undefined;
  reportsHealth = true;
  #writable: Array<() => void> = [];

  override append(stream: string, events: readonly ExecutionEvent[], options?: AppendOptions): Promise<AppendResult> {
    if (this.full) return Promise.reject(new TetherError(this.full, 'full', { dir: '/d' }));
    return super.append(stream, events, options);
  }
  health(): StoreHealth {
    return this.full && this.reportsHealth ? { ok: false, code: this.full, message: 'full', dir: '/d', since: 1, retries: 0 } : { ok: true };
  }
  whenWritable(): Promise<void> {
    return this.full ? new Promise((resolve) => this.#writable.push(resolve)) : Promise.resolve();
  }
  freed(): void {
    this.full = undefined;
    for (const resolve of this.#writable.splice(0)) resolve();
  }
}

const texts = async (store: InMemoryEventStore, id: string) =>
  (await store.read(id)).map((e) => (e.type === 'OutputProduced' ? new TextDecoder().decode(e.data.data) : e.type));

describe('ExecutionRecorder', () => {
  it('holds the appends a full store refuses and writes them in call order once it takes appends again', async () => {
    const store = new FillableStore();
    await store.append('x', [requested]);
    const recorder = new ExecutionRecorder(store, 'x');
    await recorder.append([out('a')]);
    store.full = 'DISK_FULL';
    const held = [recorder.append([out('b')]), recorder.append([out('c')])];
    await recorder.writtenOrHeld(held[0]!);
    expect(recorder.holding).toBe(true);
    held.push(recorder.append([out('d')]));
    expect(await texts(store, 'x')).toEqual(['ExecutionRequested', 'a']);
    store.freed();
    const results = await Promise.all(held);
    expect(results.map((r) => r.firstSeq)).toEqual([3, 4, 5]);
    expect(await texts(store, 'x')).toEqual(['ExecutionRequested', 'a', 'b', 'c', 'd']);
    expect(recorder.holding).toBe(false);
  });

  it('retries with a backoff when the store does not say when it can write again', async () => {
    const store = new FillableStore();
    store.reportsHealth = false;
    await store.append('x', [requested]);
    const recorder = new ExecutionRecorder(store, 'x');
    store.full = 'STORE_WRITE_FAILED';
    const written = recorder.append([out('a')]);
    await recorder.writtenOrHeld(written);
    store.full = undefined; // no one tells the recorder: its next try succeeds
    expect((await written).firstSeq).toBe(2);
  });

  it('rejects an append on any other failure, and what it holds once the store closes', async () => {
    const store = new FillableStore();
    await store.append('x', [requested]);
    const recorder = new ExecutionRecorder(store, 'x');
    await store.close();
    await expect(recorder.append([out('a')])).rejects.toMatchObject({ code: 'STORE_CLOSED' });

    const full = new FillableStore();
    full.full = 'DISK_FULL';
    full.whenWritable = () => Promise.reject(new TetherError('STORE_CLOSED'));
    const held = new ExecutionRecorder(full, 'y');
    await expect(Promise.all([held.append([out('a')]), held.append([out('b')])])).rejects.toMatchObject({ code: 'STORE_CLOSED' });
  });
});
