import { createHash } from 'node:crypto';
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTetherError } from '../errors.js';
import type { ExecutionEvent, StoredEvent } from '../events.js';
import type { EventStore } from '../eventStore.js';

/** Creates a fresh, empty store for one test; the suite closes it afterwards. */
export type EventStoreFactory = () => Promise<EventStore>;

const requested = (command = 'true'): ExecutionEvent => ({
  type: 'ExecutionRequested',
  data: { spec: { command, envMode: 'merge', stdin: false, killGraceMs: 3000 } },
});
const started = (pid = 4242): ExecutionEvent => ({ type: 'ExecutionStarted', data: { pid, pgid: pid, tty: false } });
const out = (text: string | Uint8Array, stream: 'stdout' | 'stderr' = 'stdout'): ExecutionEvent => ({
  type: 'OutputProduced',
  data: { stream, data: typeof text === 'string' ? new TextEncoder().encode(text) : text },
});
const exited = (exitCode = 0): ExecutionEvent => ({ type: 'ExecutionExited', data: { exitCode, signal: null, survivors: [] } });

const seqs = (events: readonly StoredEvent[]) => events.map((e) => e.seq);
const sha = (chunks: readonly Uint8Array[]) => {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  return hash.digest('hex');
};
async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isTetherError(error), `expected a TetherError ${code}, got ${String(error)}`).toBe(true);
  expect((error as { code: string }).code).toBe(code);
}

/**
 * The EventStore contract. Every implementation runs it against a factory of fresh stores:
 *
 * ```ts
 * eventStoreContract('LevelEventStore', async () => LevelEventStore.open(await tempDir()));
 * ```
 */
export function eventStoreContract(name: string, factory: EventStoreFactory): void {
  describe(`EventStore contract: ${name}`, () => {
    let store: EventStore;
    beforeEach(async () => {
      store = await factory();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('append', () => {
      it('numbers events contiguously from 1 and stamps a time', async () => {
        const before = Date.now();
        const first = await store.append('s1', [requested(), started()]);
        const second = await store.append('s1', [out('a'), out('b'), exited()]);
        expect(first).toEqual({ firstSeq: 1, lastSeq: 2 });
        expect(second).toEqual({ firstSeq: 3, lastSeq: 5 });
        const events = await store.read('s1');
        expect(seqs(events)).toEqual([1, 2, 3, 4, 5]);
        expect(events.map((e) => e.type)).toEqual([
          'ExecutionRequested',
          'ExecutionStarted',
          'OutputProduced',
          'OutputProduced',
          'ExecutionExited',
        ]);
        for (const e of events) expect(e.ts).toBeGreaterThanOrEqual(before - 1);
      });

      it('keeps streams apart', async () => {
        await store.append('a', [requested('one')]);
        await store.append('b', [requested('two'), started()]);
        await store.append('a', [started()]);
        expect(seqs(await store.read('a'))).toEqual([1, 2]);
        expect(seqs(await store.read('b'))).toEqual([1, 2]);
        expect(await store.read('missing')).toEqual([]);
      });

      it('fails loudly on an expectedSeq conflict and writes nothing', async () => {
        await store.append('s', [requested()], { expectedSeq: 0 });
        await expectCode(store.append('s', [requested()], { expectedSeq: 0 }), 'APPEND_CONFLICT');
        await expectCode(store.append('s', [started()], { expectedSeq: 5 }), 'APPEND_CONFLICT');
        expect(seqs(await store.read('s'))).toEqual([1]);
        await store.append('s', [started()], { expectedSeq: 1 });
        expect(seqs(await store.read('s'))).toEqual([1, 2]);
      });

      it('lets exactly one of racing appends with the same expectedSeq win', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => store.append('race', [requested(`c${i}`)], { expectedSeq: 0 })),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(isTetherError(r.reason, 'APPEND_CONFLICT')).toBe(true);
        expect(seqs(await store.read('race'))).toEqual([1]);
      });

      it('applies concurrent appends in call order, contiguously', async () => {
        await store.append('c', [requested(), started()]);
        await Promise.all(Array.from({ length: 200 }, (_, i) => store.append('c', [out(`line ${i}\n`)])));
        const events = await store.read('c');
        expect(seqs(events)).toEqual(Array.from({ length: 202 }, (_, i) => i + 1));
        const text = events.slice(2).map((e) => (e.type === 'OutputProduced' ? new TextDecoder().decode(e.data.data) : ''));
        expect(text).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i}\n`));
      });

      it('refuses malformed events and anything after a terminal event', async () => {
        await expectCode(store.append('bad', [{ type: 'NoSuchEvent', data: {} } as unknown as ExecutionEvent]), 'INVALID_ARGUMENT');
        await expectCode(store.append('bad', []), 'INVALID_ARGUMENT');
        expect(await store.read('bad')).toEqual([]);
        await store.append('t', [requested(), started(), exited()]);
        await expectCode(store.append('t', [out('late')]), 'EXEC_FINISHED');
        await expectCode(store.append('t2', [requested(), exited(), out('x')]), 'EXEC_FINISHED');
        expect(seqs(await store.read('t'))).toEqual([1, 2, 3]);
      });

      it('after the terminal event takes notification records only, folded into the state', async () => {
        const delivered: ExecutionEvent = { type: 'NotificationDelivered', data: { channel: 'url', attempts: 2, detail: 'HTTP 204' } };
        const failed: ExecutionEvent = { type: 'NotificationFailed', data: { channel: 'command', attempts: 1, error: 'exit 3' } };
        await store.append('n', [requested(), started()]);
        await expectCode(store.append('n', [delivered]), 'INVALID_ARGUMENT');
        await store.append('n', [exited()]);
        await store.append('n', [delivered]);
        await store.append('n', [failed]);
        await expectCode(store.append('n', [out('late')]), 'EXEC_FINISHED');
        const state = await store.state('n');
        expect(state).toMatchObject({ status: 'finished', endReason: 'exited', lastSeq: 5 });
        expect(state!.notifications).toEqual([
          { channel: 'url', delivered: true, attempts: 2, detail: 'HTTP 204', at: expect.any(Number) },
          { channel: 'command', delivered: false, attempts: 1, detail: 'exit 3', at: expect.any(Number) },
        ]);
        expect(await store.durableSeq('n')).toBe(5);
        // A follower still completes at the terminal event.
        expect(seqs(await lastValueFrom(store.follow('n', 0).pipe(toArray())))).toEqual([1, 2, 3]);
        expect((await store.list({ status: 'finished' })).items.map((s) => s.id)).toContain('n');
      });
    });

    describe('read', () => {
      beforeEach(async () => {
        await store.append('r', [requested(), started()]);
        await store.append('r', Array.from({ length: 18 }, (_, i) => out(`${i}`)));
      });

      it('reads after a seq, with a limit', async () => {
        expect(seqs(await store.read('r', { afterSeq: 15 }))).toEqual([16, 17, 18, 19, 20]);
        expect(seqs(await store.read('r', { afterSeq: 3, limit: 2 }))).toEqual([4, 5]);
        expect(seqs(await store.read('r', { afterSeq: 20 }))).toEqual([]);
        expect(seqs(await store.read('r', { afterSeq: 3, beforeSeq: 6 }))).toEqual([4, 5]);
      });

      it('stops a page at maxBytes of output, after the event that reaches it', async () => {
        expect(seqs(await store.read('r', { afterSeq: 2, maxBytes: 3 }))).toEqual([3, 4, 5]);
        expect(seqs(await store.read('r', { maxBytes: 1 }))).toEqual([1, 2, 3]);
        expect(seqs(await store.read('r', { reverse: true, maxBytes: 4 }))).toEqual([20, 19]);
        expect(seqs(await store.read('r', { afterSeq: 2, maxBytes: 1_000_000, limit: 4 }))).toEqual([3, 4, 5, 6]);
      });

      it('reads newest first with reverse, and pages backwards with beforeSeq', async () => {
        expect(seqs(await store.read('r', { reverse: true, limit: 3 }))).toEqual([20, 19, 18]);
        expect(seqs(await store.read('r', { reverse: true, limit: 3, beforeSeq: 18 }))).toEqual([17, 16, 15]);
        expect(seqs(await store.read('r', { reverse: true, afterSeq: 17 }))).toEqual([20, 19, 18]);
        expect(seqs(await store.read('r', { reverse: true, beforeSeq: 2 }))).toEqual([1]);
      });
    });

    describe('binary safety', () => {
      it('returns invalid UTF-8, NUL bytes and split multi-byte characters byte-identical', async () => {
        const euro = new TextEncoder().encode('€'); // 3 bytes, split across chunks below
        const chunks = [
          Uint8Array.of(0xff, 0xfe, 0x00, 0x80, 0xc3),
          Uint8Array.of(0x00, 0x00, 0x00),
          euro.slice(0, 1),
          euro.slice(1),
          new Uint8Array(0),
          Uint8Array.from({ length: 256 }, (_, i) => i),
          new Uint8Array(70_000).fill(0xed),
        ];
        await store.append('bin', [requested(), started()]);
        for (const chunk of chunks) await store.append('bin', [out(chunk, 'stderr')]);
        const back = (await store.read('bin')).flatMap((e) => (e.type === 'OutputProduced' ? [e.data.data] : []));
        expect(back.map((c) => c.byteLength)).toEqual(chunks.map((c) => c.byteLength));
        expect(sha(back)).toBe(sha(chunks));
        const state = await store.state('bin');
        expect(state?.bytes.stderr).toBe(chunks.reduce((n, c) => n + c.byteLength, 0));
      });
    });

    describe('follow', () => {
      it('replays from any seq, then completes after the terminal event', async () => {
        await store.append('f', [requested(), started(), out('a'), out('b'), exited(3)]);
        for (const after of [0, 1, 3, 4]) {
          const events = await lastValueFrom(store.follow('f', after).pipe(toArray()));
          expect(seqs(events)).toEqual([1, 2, 3, 4, 5].filter((s) => s > after));
        }
      });

      it('goes live after the replay with no gap and no duplicate while appends race it', async () => {
        await store.append('live', [requested(), started()]);
        for (let i = 0; i < 50; i++) await store.append('live', [out(`pre ${i}`)]);
        const followers = [0, 1, 10, 40, 52].map((after) => ({
          after,
          done: lastValueFrom(store.follow('live', after).pipe(toArray())),
        }));
        // Appends interleaved with the followers' replays.
        const writer = (async () => {
          for (let i = 0; i < 300; i++) {
            await store.append('live', [out(`live ${i}`)]);
            if (i % 7 === 0) await new Promise((r) => setImmediate(r));
          }
          await store.append('live', [exited()]);
        })();
        await writer;
        const total = 2 + 50 + 300 + 1;
        for (const f of followers) {
          const events = await f.done;
          expect(seqs(events)).toEqual(Array.from({ length: total - f.after }, (_, i) => f.after + i + 1));
        }
      });

      it('waits for a stream that does not exist yet', async () => {
        const first = firstValueFrom(store.follow('later'));
        await store.append('later', [requested()]);
        expect((await first).seq).toBe(1);
      });

      it('errors with STORE_CLOSED when the store closes under a follower', async () => {
        await store.append('open', [requested(), started()]);
        const events: StoredEvent[] = [];
        const ended = new Promise<unknown>((resolve) => {
          store.follow('open').subscribe({ next: (e) => events.push(e), error: resolve, complete: () => resolve('completed') });
        });
        await new Promise((r) => setTimeout(r, 20));
        await store.close();
        const reason = await ended;
        expect(isTetherError(reason, 'STORE_CLOSED')).toBe(true);
        expect(seqs(events)).toEqual([1, 2]);
        store = await factory(); // afterEach closes it
      });
    });

    describe('state and list', () => {
      it('folds the stream into its state', async () => {
        await store.append('x', [requested('echo hi'), started(77), out('hi\n'), out('oops', 'stderr'), exited(2)]);
        const state = await store.state('x');
        expect(state).toMatchObject({
          id: 'x',
          status: 'finished',
          endReason: 'exited',
          exitCode: 2,
          pid: 77,
          bytes: { stdout: 3, stderr: 4, pty: 0 },
          lastSeq: 5,
        });
        expect(await store.state('nope')).toBeUndefined();
      });

      it('lists newest first, filters by status, pages with a cursor', async () => {
        for (let i = 0; i < 7; i++) {
          await store.append(`e${i}`, [requested(), started()]);
          if (i % 2 === 0) await store.append(`e${i}`, [exited()]);
          await new Promise((r) => setTimeout(r, 3)); // distinct request times
        }
        const all = await store.list();
        expect(all.items.map((s) => s.id)).toEqual(['e6', 'e5', 'e4', 'e3', 'e2', 'e1', 'e0']);
        expect(all.cursor).toBeUndefined();
        const running = await store.list({ status: 'running' });
        expect(running.items.map((s) => s.id)).toEqual(['e5', 'e3', 'e1']);
        const finished = await store.list({ status: 'finished' });
        expect(finished.items.map((s) => s.id)).toEqual(['e6', 'e4', 'e2', 'e0']);
        const page1 = await store.list({ limit: 3 });
        expect(page1.items.map((s) => s.id)).toEqual(['e6', 'e5', 'e4']);
        const page2 = await store.list({ limit: 3, cursor: page1.cursor });
        expect(page2.items.map((s) => s.id)).toEqual(['e3', 'e2', 'e1']);
        const page3 = await store.list({ limit: 3, cursor: page2.cursor });
        expect(page3.items.map((s) => s.id)).toEqual(['e0']);
        expect(page3.cursor).toBeUndefined();
        await expectCode(store.list({ cursor: 'not a cursor' }), 'INVALID_ARGUMENT');
      });

      it('reports a durable seq no higher than the last, reaching it after a terminal event', async () => {
        await store.append('d', [requested(), started(), out('x')]);
        expect(await store.durableSeq('d')).toBeLessThanOrEqual(3);
        await store.append('d', [exited()]);
        expect(await store.durableSeq('d')).toBe(4);
        expect(await store.durableSeq('none')).toBe(0);
      });
    });

    it('refuses calls after close with STORE_CLOSED', async () => {
      await store.close();
      await expectCode(store.append('z', [requested()]), 'STORE_CLOSED');
      await expectCode(store.read('z'), 'STORE_CLOSED');
      store = await factory();
    });
  });
}
