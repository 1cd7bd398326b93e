import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isTetherError, type ExecutionEvent, type StoredEvent } from '@tether/core';
import { mountSmallDisk, rejection, type SmallDisk } from '@tether/core/testing';
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LevelEventStore } from './levelEventStore.js';

// A real 8 MiB tmpfs filled to the last byte: LevelDB's log write fails with ENOSPC.
const disk = await mountSmallDisk(8);
const skip = 'skip' in disk ? disk.skip : undefined;

const requested = (command: string): ExecutionEvent => ({
  type: 'ExecutionRequested',
  data: { spec: { command, envMode: 'merge', stdin: false, killGraceMs: 3000 } },
});
const output = (data: Uint8Array): ExecutionEvent => ({ type: 'OutputProduced', data: { stream: 'stdout', data } });
const exited: ExecutionEvent = { type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } };

function stdoutOf(events: readonly StoredEvent[]): Buffer {
  return Buffer.concat(events.flatMap((e) => (e.type === 'OutputProduced' ? [e.data.data] : [])));
}
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

afterAll(async () => {
  if (!skip) await (disk as SmallDisk).unmount();
});

describe.skipIf(skip !== undefined)(`a store whose disk fills up${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const small = disk as SmallDisk;
  let dir: string;
  let store: LevelEventStore;
  beforeAll(async () => {
    dir = join(small.dir, 'events');
    store = await LevelEventStore.open(dir, { retryMinMs: 50, retryMaxMs: 200 });
  });
  afterAll(async () => {
    await store?.close().catch(() => undefined);
  });

  it('refuses appends with DISK_FULL, keeps reads and earlier data, ends followers, and resumes by itself once space is freed', async () => {
    // A finished execution and a running one, written before the disk fills.
    await store.append('done', [requested('echo done'), { type: 'ExecutionStarted', data: { pid: 1, pgid: 1, tty: false } }]);
    for (let i = 0; i < 20; i++) await store.append('done', [output(randomBytes(4096))]);
    await store.append('done', [exited]);
    const doneBefore = await store.read('done');

    await store.append('run', [requested('yes'), { type: 'ExecutionStarted', data: { pid: 2, pgid: 2, tty: false } }]);
    const accepted: Buffer[] = [];
    const first = randomBytes(8192);
    await store.append('run', [output(first)]);
    accepted.push(first);
    const liveFollow = lastValueFrom(store.follow('run').pipe(toArray())).catch((error: unknown) => error);

    await small.fill();
    let refused: unknown;
    for (let i = 0; i < 1000 && refused === undefined; i++) {
      const chunk = randomBytes(64 * 1024);
      try {
        await store.append('run', [output(chunk)]);
        accepted.push(chunk);
      } catch (error) {
        refused = error;
      }
    }
    expect(isTetherError(refused, 'DISK_FULL'), String(refused)).toBe(true);
    expect((refused as Error).message).toContain(dir);

    // Health says so, with the directory and since when.
    const health = store.health();
    expect(health).toMatchObject({ ok: false, code: 'DISK_FULL', dir });
    expect(health.ok === false && health.since).toBeGreaterThan(0);

    // Writers get DISK_FULL at once, whatever they write.
    expect(await rejection(store.append('new', [requested('true')], { expectedSeq: 0 }))).toMatchObject({ code: 'DISK_FULL' });
    expect(await rejection(store.append('run', [output(Buffer.from('x'))]))).toMatchObject({ code: 'DISK_FULL' });

    // Reads keep working; the earlier data is unchanged; the refused writes left nothing.
    expect(await store.read('done')).toEqual(doneBefore);
    const runNow = await store.read('run');
    expect(sha(stdoutOf(runNow))).toBe(sha(Buffer.concat(accepted)));
    expect((await store.state('run'))?.lastSeq).toBe(runNow.length);
    expect(await store.state('new')).toBeUndefined();
    expect((await store.list()).items.map((s) => s.id).sort()).toEqual(['done', 'run']);

    // The live follower got the error instead of waiting; a new follow of a finished execution
    // ends normally, one of a running execution replays then gets the error.
    expect(await liveFollow).toMatchObject({ code: 'DISK_FULL' });
    expect(await lastValueFrom(store.follow('done').pipe(toArray()))).toEqual(doneBefore);
    const replayed: StoredEvent[] = [];
    const followError = await new Promise((resolve) => store.follow('run').subscribe({ next: (e) => replayed.push(e), error: resolve, complete: () => resolve(undefined) }));
    expect(followError).toMatchObject({ code: 'DISK_FULL' });
    expect(replayed).toEqual(runNow);

    // Space freed: the store reopens LevelDB by itself and takes appends again.
    const writable = store.whenWritable();
    await small.free();
    await writable;
    expect(store.health()).toEqual({ ok: true });
    expect(store.stats.reopens).toBeGreaterThanOrEqual(1);

    const tail = randomBytes(10_000);
    const next = firstValueFrom(store.follow('run', runNow.length));
    const appended = await store.append('run', [output(tail)]);
    expect(appended.firstSeq).toBe(runNow.length + 1);
    expect((await next).seq).toBe(runNow.length + 1);
    accepted.push(tail);
    await store.append('run', [exited]);
    await store.append('new', [requested('true')], { expectedSeq: 0 });

    const check = async (s: LevelEventStore) => {
      const events = await s.read('run');
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(sha(stdoutOf(events))).toBe(sha(Buffer.concat(accepted)));
      expect((await s.state('run'))).toMatchObject({ status: 'finished', lastSeq: events.length });
      expect(await s.read('done')).toEqual(doneBefore);
      expect((await s.state('new'))?.lastSeq).toBe(1);
    };
    await check(store);
    // And all of it is what a fresh open finds.
    await store.close();
    store = await LevelEventStore.open(dir);
    await check(store);
  });
});

describe.skipIf(skip !== undefined)(`opening a store on a full disk${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('fails with DISK_FULL (not STORE_CORRUPT), changes nothing, and opens once space is freed', async () => {
    const small = disk as SmallDisk;
    const dir = join(small.dir, 'reopened');
    let store = await LevelEventStore.open(dir);
    await store.append('a', [requested('echo a'), output(Buffer.from('a\n'))]);
    await store.close();
    await small.fill();
    const refused = await rejection(LevelEventStore.open(dir));
    expect(refused.code).toBe('DISK_FULL');
    expect(refused.message).toContain(`free space under ${dir}`);
    await small.free();
    store = await LevelEventStore.open(dir);
    try {
      expect(stdoutOf(await store.read('a')).toString()).toBe('a\n');
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(skip !== undefined)(`a failed compaction on a full disk${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('recovers too: LevelDB keeps refusing writes after space is freed until the store reopens it', async () => {
    const small = disk as SmallDisk;
    const dir = join(small.dir, 'compacting');
    // A 64 KiB memtable: LevelDB flushes it to a table (in the background) every few appends.
    const store = await LevelEventStore.open(dir, { writeBufferBytes: 64 * 1024, retryMinMs: 50, retryMaxMs: 200 });
    try {
      await store.append('c', [requested('yes')]);
      await small.fill(1024 * 1024);
      const accepted: Buffer[] = [];
      let refused: unknown;
      for (let i = 0; i < 2000 && refused === undefined; i++) {
        const chunk = randomBytes(16 * 1024);
        try {
          await store.append('c', [output(chunk)]);
          accepted.push(chunk);
        } catch (error) {
          refused = error;
        }
      }
      expect(refused).toMatchObject({ code: 'DISK_FULL' });
      // Usually a table of the background flush fails first (the case LevelDB keeps failing in);
      // under load the log or the manifest may fail first. Either way the store must recover.
      expect(String((refused as Error).cause)).toMatch(/No space left on device/);
      const writable = store.whenWritable();
      await small.free();
      await writable;
      const tail = randomBytes(50_000);
      await store.append('c', [output(tail), exited]);
      accepted.push(tail);
      const events = await store.read('c');
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(sha(stdoutOf(events))).toBe(sha(Buffer.concat(accepted)));
      expect((await store.state('c'))?.status).toBe('finished');
    } finally {
      await store.close();
    }
  });
});
