import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { foldEvents, isTetherError, type ExecutionEvent, type StoredEvent } from '@tether/core';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelEventStore, type LevelEventStoreOptions } from './levelEventStore.js';

const requested = (command = 'true'): ExecutionEvent => ({
  type: 'ExecutionRequested',
  data: { spec: { command, envMode: 'merge', stdin: false, killGraceMs: 3000 } },
});
const started = (): ExecutionEvent => ({ type: 'ExecutionStarted', data: { pid: 7, pgid: 7, tty: false } });
const out = (data: string | Uint8Array, stream: 'stdout' | 'stderr' = 'stdout'): ExecutionEvent => ({
  type: 'OutputProduced',
  data: { stream, data: typeof data === 'string' ? new TextEncoder().encode(data) : data },
});
const exited = (): ExecutionEvent => ({ type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } });
const seqs = (events: readonly StoredEvent[]) => events.map((e) => e.seq);
const types = (events: readonly StoredEvent[]) => events.map((e) => e.type);
const sha = (chunks: readonly Uint8Array[]) => {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
};
const outputOf = (events: readonly StoredEvent[]) => events.flatMap((e) => (e.type === 'OutputProduced' ? [e.data.data] : []));

async function until(condition: () => Promise<boolean>, what: string, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const dirs: string[] = [];
const stores: LevelEventStore[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tether-level-'));
  dirs.push(dir);
  return dir;
}
async function openStore(dir: string, options?: LevelEventStoreOptions): Promise<LevelEventStore> {
  const store = await LevelEventStore.open(dir, options);
  stores.push(store);
  return store;
}
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('LevelEventStore', () => {
  it('returns output byte-identical after close and reopen', async () => {
    const dir = await freshDir();
    const euro = new TextEncoder().encode('€');
    const chunks = [
      Uint8Array.of(0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1), // invalid UTF-8
      Uint8Array.of(0x00, 0x00, 0x0a, 0x00),
      euro.subarray(0, 2),
      euro.subarray(2),
      new Uint8Array(0),
      Uint8Array.from({ length: 256 }, (_, i) => i),
      Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919) & 0xff),
    ];
    let store = await openStore(dir);
    await store.append('bin', [requested(), started()]);
    for (const chunk of chunks) await store.append('bin', [out(chunk, 'stderr')]);
    await store.append('bin', [exited()]);
    await store.close();

    store = await openStore(dir);
    const back = outputOf(await store.read('bin'));
    expect(back.map((c) => c.byteLength)).toEqual(chunks.map((c) => c.byteLength));
    expect(sha(back)).toBe(sha(chunks));
    expect(new TextDecoder().decode(Buffer.concat([back[2]!, back[3]!]))).toBe('€');
    expect((await store.state('bin'))?.bytes.stderr).toBe(chunks.reduce((n, c) => n + c.byteLength, 0));
  });

  it('keeps streams whose names share a prefix apart', async () => {
    const store = await openStore(await freshDir());
    const names = ['a', 'a\u0000', 'a\u0000b', 'ab', 'é', 'a'.repeat(256)];
    for (const [i, name] of names.entries()) await store.append(name, Array.from({ length: i + 1 }, () => requested()));
    for (const [i, name] of names.entries()) {
      const events = await store.read(name);
      expect(seqs(events)).toEqual(Array.from({ length: i + 1 }, (_, j) => j + 1));
      expect((await store.read(name, { reverse: true, limit: 1 }))[0]?.seq).toBe(i + 1);
    }
  });

  it('pages backwards through a long stream', async () => {
    const store = await openStore(await freshDir());
    await store.append('long', [requested(), started()]);
    for (let i = 0; i < 30; i++) await store.append('long', Array.from({ length: 100 }, (_, j) => out(`${i * 100 + j}\n`)));
    const seen: number[] = [];
    let beforeSeq: number | undefined;
    for (;;) {
      const page = await store.read('long', { reverse: true, limit: 700, beforeSeq });
      if (page.length === 0) break;
      seen.push(...seqs(page));
      beforeSeq = page[page.length - 1]!.seq;
    }
    expect(seen).toEqual(Array.from({ length: 3002 }, (_, i) => 3002 - i));
    expect(seqs(await store.read('long', { reverse: true, afterSeq: 2990, beforeSeq: 2995 }))).toEqual([2994, 2993, 2992, 2991]);
  });

  describe('group commit', () => {
    it('writes many concurrent small appends in a few batches', async () => {
      const store = await openStore(await freshDir());
      await store.append('g', [requested(), started()]);
      const before = store.stats;
      // One append starts a write; the 300 made while it is in flight share the next one.
      const first = store.append('g', [out('first\n')]);
      await new Promise((r) => setImmediate(r));
      const rest = Array.from({ length: 300 }, (_, i) => store.append(`g${i % 5}`, [out(`line ${i}\n`)]));
      await Promise.all([first, ...rest]);
      const after = store.stats;
      expect(after.appends - before.appends).toBe(301);
      expect(after.writes - before.writes).toBeLessThanOrEqual(3);
      const lines = (await store.read('g2')).map((e) => (e.type === 'OutputProduced' ? new TextDecoder().decode(e.data.data) : ''));
      expect(lines).toEqual(Array.from({ length: 60 }, (_, i) => `line ${i * 5 + 2}\n`));
    });

    it("lets a quiet stream's appends go ahead of another stream's queued output, in their own order", async () => {
      const store = await openStore(await freshDir());
      await store.append('flood', [requested(), started()]);
      await store.append('quiet', [requested()]);
      const chunk = new Uint8Array(64 * 1024).fill(0x62);
      const finished: string[] = [];
      const flood = Array.from({ length: 80 }, (_, i) => store.append('flood', [out(chunk)]).then(() => void finished.push(`flood ${i}`)));
      // The first goes in a small batch at the front of the queue; the second, made while the
      // first is still queued, joins it.
      const quiet = [
        store.append('quiet', [started()]).then(() => void finished.push('quiet started')),
        store.append('quiet', [exited()]).then(() => void finished.push('quiet exited')),
      ];
      await Promise.all([...flood, ...quiet]);
      expect(finished.slice(0, 2)).toEqual(['quiet started', 'quiet exited']);
      expect(seqs(await store.read('flood'))).toEqual(Array.from({ length: 82 }, (_, i) => i + 1));
      expect(types(await store.read('quiet'))).toEqual(['ExecutionRequested', 'ExecutionStarted', 'ExecutionExited']);
    });

    it('cuts batches at about 256 KiB', async () => {
      const store = await openStore(await freshDir());
      await store.append('big', [requested(), started()]);
      const before = store.stats.writes;
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      await Promise.all(Array.from({ length: 40 }, () => store.append('big', [out(chunk)])));
      const writes = store.stats.writes - before;
      expect(writes).toBeGreaterThanOrEqual(9); // 40 × 64 KiB = 2.5 MiB
      expect(writes).toBeLessThanOrEqual(13);
      expect((await store.state('big'))?.bytes.stdout).toBe(40 * 64 * 1024);
    });

    it('rewrites a stream snapshot at state changes and checkpoints, not with every output batch', async () => {
      const dir = await freshDir();
      let store = await openStore(dir);
      await store.append('k', [requested()]);
      await store.append('k', [started()]);
      const before = store.stats;
      for (let i = 0; i < 100; i++) await store.append('k', [out(`${i}\n`)]);
      const after = store.stats;
      expect(after.writes - before.writes).toBe(100);
      expect(after.checkpoints - before.checkpoints).toBe(0);
      expect(await store.state('k')).toMatchObject({ lastSeq: 102, bytes: { stdout: 290 } });
      await store.append('k', [{ type: 'SignalSent', data: { signal: 'SIGTERM', reason: 'cancel' } }]);
      expect(store.stats.checkpoints - after.checkpoints).toBe(1);
      await store.append('k', [out('last\n')]);
      await store.close(); // writes the lagging snapshot
      store = await openStore(dir);
      expect(await store.state('k')).toMatchObject({ lastSeq: 104, stopReason: 'cancel', bytes: { stdout: 295 } });
      expect((await store.list()).items[0]).toEqual(foldEvents('k', await store.read('k')));
    });

    it('checks expectedSeq against appends still in flight', async () => {
      const store = await openStore(await freshDir());
      const a = store.append('e', [requested()], { expectedSeq: 0 });
      const b = store.append('e', [started(), out('x')], { expectedSeq: 1 });
      const stale = store.append('e', [out('y')], { expectedSeq: 1 });
      const c = store.append('e', [out('z')], { expectedSeq: 3 });
      expect(await a).toEqual({ firstSeq: 1, lastSeq: 1 });
      expect(await b).toEqual({ firstSeq: 2, lastSeq: 3 });
      expect(await stale.catch((e: unknown) => e)).toSatisfy((e) => isTetherError(e, 'APPEND_CONFLICT'));
      expect(await c).toEqual({ firstSeq: 4, lastSeq: 4 });
      expect(seqs(await store.read('e'))).toEqual([1, 2, 3, 4]);
    });

    it('syncs request, start and terminal events before resolving; output catches up by itself', async () => {
      const store = await openStore(await freshDir(), { syncIntervalMs: 20 });
      expect(await store.append('d', [requested()])).toEqual({ firstSeq: 1, lastSeq: 1 });
      expect(await store.durableSeq('d')).toBe(1);
      await store.append('d', [started()]);
      expect(await store.durableSeq('d')).toBe(2);
      const syncsBefore = store.stats.syncWrites;
      const { lastSeq } = await store.append('d', [out('a'), out('b')]);
      expect(lastSeq).toBe(4);
      expect(await store.durableSeq('d')).toBeLessThanOrEqual(4);
      await until(async () => (await store.durableSeq('d')) === 4, 'the durable watermark to reach the output');
      expect(store.stats.syncWrites).toBeGreaterThan(syncsBefore);
    });

    it('writes appends made before close, then refuses new ones', async () => {
      const dir = await freshDir();
      let store = await openStore(dir);
      await store.append('c', [requested(), started()]);
      const pending = Array.from({ length: 50 }, (_, i) => store.append('c', [out(`${i}`)]));
      const closing = store.close();
      await expect(store.append('c', [out('late')])).rejects.toSatisfy((e) => isTetherError(e, 'STORE_CLOSED'));
      await Promise.all(pending);
      await closing;
      await store.close(); // idempotent
      store = await openStore(dir);
      expect(seqs(await store.read('c'))).toHaveLength(52);
      expect(await store.durableSeq('c')).toBe(52);
    });
  });

  describe('output cap', () => {
    it('keeps output up to the cap and reports every dropped byte', async () => {
      const store = await openStore(await freshDir(), { maxOutputBytesPerExecution: 100 });
      await store.append('cap', [requested(), started()]);
      expect(await store.append('cap', [out('a'.repeat(60))])).toEqual({ firstSeq: 3, lastSeq: 3 });
      // Crosses the cap: 40 bytes kept, 20 dropped and reported at once.
      expect(await store.append('cap', [out('b'.repeat(60))])).toEqual({ firstSeq: 4, lastSeq: 5 });
      // Past the cap: dropped, nothing written, counted for later.
      expect(await store.append('cap', [out('c'.repeat(30))])).toEqual({ firstSeq: 6, lastSeq: 5 });
      expect(await store.append('cap', [out('d'.repeat(10)), out('e'.repeat(5), 'stderr')])).toEqual({ firstSeq: 6, lastSeq: 5 });
      expect(await store.append('cap', [exited()])).toEqual({ firstSeq: 6, lastSeq: 7 });

      const events = await store.read('cap');
      expect(types(events)).toEqual([
        'ExecutionRequested',
        'ExecutionStarted',
        'OutputProduced',
        'OutputProduced',
        'OutputTruncated',
        'OutputTruncated',
        'ExecutionExited',
      ]);
      expect(events[3]).toMatchObject({ data: { data: new TextEncoder().encode('b'.repeat(40)) } });
      expect(events[4]).toMatchObject({ data: { droppedBytes: 20, limitBytes: 100 } });
      expect(events[5]).toMatchObject({ data: { droppedBytes: 45, limitBytes: 100 } });
      const state = await store.state('cap');
      expect(state).toMatchObject({ truncatedBytes: 65, bytes: { stdout: 100, stderr: 0 }, lastSeq: 7 });
      expect(state).toEqual(foldEvents('cap', events));
    });

    it('remembers unreported drops across a reopen', async () => {
      const dir = await freshDir();
      let store = await openStore(dir, { maxOutputBytesPerExecution: 10 });
      await store.append('r', [requested(), started(), out('0123456789abc')]);
      await store.append('r', [out('more')]);
      await store.close();
      store = await openStore(dir, { maxOutputBytesPerExecution: 10 });
      await store.append('r', [{ type: 'ExecutionLost', data: { reason: 'daemon restarted' } }]);
      const events = await store.read('r');
      expect(types(events).slice(-3)).toEqual(['OutputTruncated', 'OutputTruncated', 'ExecutionLost']);
      expect((await store.state('r'))?.truncatedBytes).toBe(3 + 4);
    });
  });

  describe('list and prune', () => {
    async function populate(store: LevelEventStore): Promise<void> {
      // f0..f3 finished, r4 running, q5 queued; request times strictly increase.
      const plan = ['f0', 'f1', 'f2', 'f3', 'r4', 'q5'];
      for (const id of plan) {
        const at = Date.now();
        await store.append(id, [requested(id)]);
        if (id[0] !== 'q') await store.append(id, [started(), out(`${id} output\n`)]);
        if (id[0] === 'f') await store.append(id, [exited()]);
        while (Date.now() === at) await new Promise((r) => setTimeout(r, 1));
      }
    }
    const ids = (page: { items: readonly { id: string }[] }) => page.items.map((s) => s.id);

    it('serves list from its index after a reopen', async () => {
      const dir = await freshDir();
      let store = await openStore(dir);
      await populate(store);
      const expected = {
        all: ids(await store.list()),
        finished: ids(await store.list({ status: 'finished' })),
        running: ids(await store.list({ status: 'running' })),
        queued: ids(await store.list({ status: 'queued' })),
      };
      expect(expected).toEqual({ all: ['q5', 'r4', 'f3', 'f2', 'f1', 'f0'], finished: ['f3', 'f2', 'f1', 'f0'], running: ['r4'], queued: ['q5'] });
      await store.close();
      store = await openStore(dir);
      expect(ids(await store.list())).toEqual(expected.all);
      expect(ids(await store.list({ status: 'finished' }))).toEqual(expected.finished);
      expect(ids(await store.list({ status: 'running' }))).toEqual(expected.running);
      const page1 = await store.list({ status: 'finished', limit: 3 });
      expect(ids(page1)).toEqual(['f3', 'f2', 'f1']);
      const page2 = await store.list({ status: 'finished', limit: 3, cursor: page1.cursor });
      expect(ids(page2)).toEqual(['f0']);
      expect(page2.cursor).toBeUndefined();
      // The index moves when the status changes.
      await store.append('r4', [exited()]);
      expect(ids(await store.list({ status: 'running' }))).toEqual([]);
      expect(ids(await store.list({ status: 'finished', limit: 1 }))).toEqual(['r4']);
    });

    it('prunes finished executions by count, never running or queued ones', async () => {
      const dir = await freshDir();
      let store = await openStore(dir);
      await populate(store);
      const result = await store.prune({ keepFinished: 1 });
      expect([...result.removed].sort()).toEqual(['f0', 'f1', 'f2']);
      expect(result.events).toBe(3 * 4);
      for (const id of ['f0', 'f1', 'f2']) {
        expect(await store.read(id)).toEqual([]);
        expect(await store.state(id)).toBeUndefined();
      }
      expect(ids(await store.list())).toEqual(['q5', 'r4', 'f3']);
      await store.close();
      store = await openStore(dir);
      expect(ids(await store.list())).toEqual(['q5', 'r4', 'f3']);
      expect(seqs(await store.read('r4'))).toEqual([1, 2, 3]);
      // A pruned id can start over.
      expect(await store.append('f0', [requested()])).toEqual({ firstSeq: 1, lastSeq: 1 });
    });

    it('prunes finished executions by age, never running or queued ones', async () => {
      const store = await openStore(await freshDir());
      await populate(store);
      expect((await store.prune({ olderThanMs: 60_000 })).removed).toEqual([]);
      const finishedAt = (await store.state('f3'))!.finishedAt!;
      await until(async () => Date.now() > finishedAt, 'the clock to pass the last finish');
      const result = await store.prune({ olderThanMs: 0 });
      expect([...result.removed].sort()).toEqual(['f0', 'f1', 'f2', 'f3']);
      expect(ids(await store.list())).toEqual(['q5', 'r4']);
      expect(await store.prune({ keepFinished: 0 })).toEqual({ removed: [], events: 0 });
      await expect(store.prune({})).rejects.toSatisfy((e) => isTetherError(e, 'INVALID_ARGUMENT'));
    });
  });

  it('validates its inputs', async () => {
    const store = await openStore(await freshDir());
    const invalid = (e: unknown) => isTetherError(e, 'INVALID_ARGUMENT');
    await expect(store.read('', {})).rejects.toSatisfy(invalid);
    await expect(store.read('x', { limit: -1 })).rejects.toSatisfy(invalid);
    await expect(store.read('x', { afterSeq: 1.5 })).rejects.toSatisfy(invalid);
    await expect(store.list({ status: 'paused' as never })).rejects.toSatisfy(invalid);
    await expect(store.append('x'.repeat(300), [requested()])).rejects.toSatisfy(invalid);
    await expect(LevelEventStore.open(await freshDir(), { maxOutputBytesPerExecution: -1 })).rejects.toSatisfy(invalid);
  });
});
