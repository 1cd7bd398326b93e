import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { isTetherError, type TetherError } from '../errors.js';
import { InMemoryEventStore } from '../inMemoryEventStore.js';
import { createKernel } from '../kernel.js';
import { MAX_COMMAND_BYTES, MAX_LABEL_BYTES } from '../specLimits.js';
import { eventually } from '../testing/eventually.js';
import type { Channel } from '../transport.js';
import { serveMachine } from './rpcServer.js';
import { SendBudget, Slots } from './sendBudget.js';

const MiB = 1024 * 1024;

/** A channel whose unsent bytes the test sets, recording what is sent and whether it is paused. */
function fakeChannel() {
  const inbox = new Subject<string | Uint8Array>();
  const state = { buffered: 0, paused: false, pauses: 0, resumes: 0 };
  const sent: unknown[] = [];
  const channel: Channel = {
    messages$: inbox.asObservable(),
    get bufferedAmount() {
      return state.buffered;
    },
    send: (message) => void sent.push(typeof message === 'string' ? JSON.parse(message) : message),
    pause: () => void ((state.paused = true), state.pauses++),
    resume: () => void ((state.paused = false), state.resumes++),
    close: () => inbox.complete(),
  };
  return { channel, inbox, state, sent };
}

async function failure(promise: Promise<unknown>): Promise<TetherError> {
  try {
    await promise;
  } catch (error) {
    if (isTetherError(error)) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

describe('SendBudget', () => {
  it('grants reservations in order while they fit, and the rest once bytes have drained', async () => {
    const { channel, state } = fakeChannel();
    const budget = new SendBudget(channel, 10, 1);
    const first = await budget.reserve(6);
    const order: string[] = [];
    const second = budget.reserve(6).then((release) => (order.push('second'), release));
    const third = budget.reserve(1).then((release) => (order.push('third'), release));
    await Promise.resolve();
    expect(order).toEqual([]); // the third fits, but waits behind the second
    expect(budget.full).toBe(false);
    state.buffered = 4;
    expect(budget.full).toBe(true);
    first();
    state.buffered = 0;
    await eventually(() => order.length === 2, 1000, 'both granted');
    expect(order).toEqual(['second', 'third']);
    (await second)();
    (await third)();
    expect(budget.unsent).toBe(0);
  });

  it('grants a reservation larger than the limit alone, once nothing else is unsent', async () => {
    const { channel, state } = fakeChannel();
    const budget = new SendBudget(channel, 10, 1);
    state.buffered = 1;
    let granted = false;
    const big = budget.reserve(50).then((release) => ((granted = true), release));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(granted).toBe(false);
    state.buffered = 0;
    (await big)();
    expect(granted).toBe(true);
  });

  it('fails waiters when closed', async () => {
    const { channel } = fakeChannel();
    const budget = new SendBudget(channel, 10, 1);
    await budget.reserve(10);
    const waiting = budget.reserve(1);
    budget.close();
    expect((await failure(waiting)).code).toBe('CONNECTION_LOST');
    expect((await failure(budget.reserve(1))).code).toBe('CONNECTION_LOST');
  });

  it('Slots hold at most their size, served in order', async () => {
    const slots = new Slots(1);
    const one = await slots.acquire();
    let second = false;
    const next = slots.acquire().then((release) => ((second = true), release));
    await Promise.resolve();
    expect(second).toBe(false);
    one();
    (await next)();
    expect(second).toBe(true);
    slots.close();
    expect((await failure(slots.acquire())).code).toBe('CONNECTION_LOST');
  });
});

describe('serveMachine backpressure', () => {
  it('stops reading requests while the connection is backed up, and answers the held ones once it drains', async () => {
    const kernel = await createKernel();
    const { channel, inbox, state, sent } = fakeChannel();
    const backedUp: number[] = [];
    const session = serveMachine(kernel.machine(), channel, { maxUnsentBytes: 1000, onBackedUp: ({ unsentBytes }) => backedUp.push(unsentBytes) });
    const request = (id: number) => inbox.next(JSON.stringify({ jsonrpc: '2.0', id, method: 'daemon/health' }));
    request(1);
    await eventually(() => sent.length === 1, 1000, 'the first reply');
    state.buffered = 5000; // the peer stopped reading
    request(2);
    await eventually(() => state.paused, 1000, 'reading paused');
    expect(backedUp).toEqual([5000]);
    request(3); // arrived before the pause took effect: held
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sent.length).toBe(2);
    state.buffered = 0;
    await eventually(() => sent.length === 3 && !state.paused, 1000, 'the held request answered, reading resumed');
    expect((sent as Array<{ id: number }>).map((r) => r.id)).toEqual([1, 2, 3]);
    session.close();
    await kernel.close();
  });

  it('refuses a batch whose replies could not fit in the budget, request by request', async () => {
    const kernel = await createKernel();
    const { channel, inbox, sent } = fakeChannel();
    serveMachine(kernel.machine(), channel, { maxUnsentBytes: 8 * MiB });
    const list = (id: number) => ({ jsonrpc: '2.0', id, method: 'exec/list', params: {} });
    inbox.next(JSON.stringify([list(1), list(2)]));
    await eventually(() => sent.length === 1, 1000, 'the batch reply');
    const [first, second] = sent[0] as Array<{ id: number; result?: unknown; error?: { data: { code: string } } }>;
    expect(first).toMatchObject({ id: 1, result: { items: [] } });
    expect(second).toMatchObject({ id: 2, error: { data: { code: 'TOO_LARGE' } } });
    await kernel.close();
  });
});

describe('spec size limits and list pages', () => {
  it('exec.start refuses labels over 64 KiB and command lines over 2 MiB, naming the limit', async () => {
    const kernel = await createKernel();
    const exec = kernel.machine().exec;
    const labels = await failure(exec.start({ command: 'true', labels: { a: 'x'.repeat(MAX_LABEL_BYTES) } }));
    expect(labels).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'labels', limit: MAX_LABEL_BYTES, bytes: MAX_LABEL_BYTES + 1 } });
    const env = await failure(exec.start({ argv: ['true'], env: { BIG: 'x'.repeat(MAX_COMMAND_BYTES) } }));
    expect(env).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'command', limit: MAX_COMMAND_BYTES } });
    // Within the limits the spec passes (and fails later only for want of a process backend).
    expect((await failure(exec.start({ command: 'x'.repeat(MiB), labels: { a: 'x'.repeat(MAX_LABEL_BYTES - 1) } }))).code).toBe('BACKEND_UNAVAILABLE');
    await kernel.close();
  });

  it('exec.list cuts a page at about 4 MiB and its cursors reach every execution once', async () => {
    const store = new InMemoryEventStore();
    // Recorded straight into the store: a spec of 1 MiB each (as an older daemon may have stored).
    for (let i = 0; i < 10; i++) {
      await store.append(`e${i}`, [{ type: 'ExecutionRequested', data: { spec: { command: `${i}${'x'.repeat(MiB)}`, envMode: 'merge', stdin: false, killGraceMs: 3000 } } }], { expectedSeq: 0 });
    }
    const kernel = await createKernel({ store });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await kernel.machine().exec.list({ limit: 100, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeGreaterThan(0);
      expect(JSON.stringify(page.items).length).toBeLessThanOrEqual(4 * MiB);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(4); // 3 + 3 + 3 + 1
    expect(seen.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `e${i}`).sort());
    await kernel.close();
    await store.close();
  });
});
