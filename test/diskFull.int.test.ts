// A running command whose output cannot be stored (the disk is full) is paused, not killed and
// not dropped: the kernel holds at most its output high water, the command then blocks writing
// to its pipe, and every byte is recorded in order once space is freed.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKernel, type StoredEvent } from '@tether/core';
import { mountSmallDisk, type SmallDisk } from '@tether/core/testing';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import { eventually, withTempDir } from './support.js';

const disk = await mountSmallDisk(8);
const skip = 'skip' in disk ? disk.skip : undefined;
afterAll(async () => {
  if (!skip) await (disk as SmallDisk).unmount();
});

/** Where the kernel sleeps a process blocked writing to a full pipe or socket pair (Node's stdio). */
const BLOCKED_WRITING = /pipe_write|sock_alloc_send_pskb|unix_stream_sendmsg|sk_stream_wait_memory/;
const wchan = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return '';
  }
};

describe.skipIf(skip !== undefined)(`output while the disk is full${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('pauses the command (it blocks writing to its pipe) and records all of its output, in order, after space is freed', async () => {
    const small = disk as SmallDisk;
    await withTempDir(async (dir) => {
      const store = await LevelEventStore.open(join(small.dir, 'events'), { retryMinMs: 50, retryMaxMs: 250 });
      const kernel = await createKernel({ plugins: [processPlugin], store, local: { outputHighWaterBytes: 256 * 1024 } });
      const exec = kernel.machine('local').exec;
      try {
        const gate = join(dir, 'gate');
        // About 4.8 MB of lines, more than the high water and the pipe together; `exec` keeps the pid.
        const started = await exec.start({ command: `until [ -e ${gate} ]; do sleep 0.05; done; exec seq 1 700000` });
        const pid = started.pid!;
        await small.fill();
        writeFileSync(gate, '');
        await eventually(() => store.health().ok === false, 20_000, 'the store to refuse a write');
        // Back-pressure reached the command: it sleeps in a write to its stdout (and was not killed).
        await eventually(() => BLOCKED_WRITING.test(wchan(pid)), 20_000, 'seq to block writing its output');
        expect((await exec.get(started.id)).status).toBe('running');

        // While the store cannot write, a wait ends with its error rather than hanging.
        expect(await exec.wait(started.id).catch((e: unknown) => e)).toMatchObject({ code: 'DISK_FULL' });
        await small.free();
        await store.whenWritable();
        const done = await exec.wait(started.id);
        expect(done).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0 });
        const events: StoredEvent[] = await store.read(started.id);
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        const stdout = Buffer.concat(events.flatMap((e) => (e.type === 'OutputProduced' ? [e.data.data] : [])));
        const expected = Array.from({ length: 700_000 }, (_, i) => `${i + 1}\n`).join('');
        expect(stdout.byteLength).toBe(Buffer.byteLength(expected));
        expect(createHash('sha256').update(stdout).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
        expect(store.stats.writeFailures).toBeGreaterThan(0);
      } finally {
        await kernel.close();
        await store.close();
      }
    });
  });

  it('closes without hanging while the disk is full; the next open takes appends again once space is freed', async () => {
    const small = disk as SmallDisk;
    const dir = join(small.dir, 'closing');
    let store = await LevelEventStore.open(dir, { retryMinMs: 50, retryMaxMs: 250 });
    const kernel = await createKernel({ plugins: [processPlugin], store });
    const exec = kernel.machine('local').exec;
    const started = await exec.start({ command: 'exec seq 1 1000000' });
    await small.fill();
    await eventually(() => store.health().ok === false, 20_000, 'the store to refuse a write');
    // The daemon's way out: cancel what runs, then close the store, with nothing left pending.
    await kernel.close();
    await store.close();
    await small.free();
    // The test before left its store on this small disk: remove it, so that reopening has room to
    // replay this store's log however much the other wrote before its disk filled.
    await rm(join(small.dir, 'events'), { recursive: true, force: true });
    store = await LevelEventStore.open(dir);
    try {
      const state = await store.state(started.id);
      expect(state?.lastSeq).toBe((await store.read(started.id)).length);
      await store.append('after', [{ type: 'ExecutionRequested', data: { spec: { command: 'true', envMode: 'merge', stdin: false, killGraceMs: 3000 } } }]);
    } finally {
      await store.close();
    }
  });
});
