import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTetherError, type StoredEvent } from '@tether/core';
import { eventually, mountSmallDisk, rejection, type SmallDisk } from '@tether/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { readToken, remoteMachine, startDaemon } from './index.js';
import { backends, removeTempDirs, tempDir } from '../test/support.js';

// The daemon's data dir on a real 8 MiB tmpfs that the test fills to the last byte.
const disk = await mountSmallDisk(8);
const skip = 'skip' in disk ? disk.skip : undefined;
const writer = fileURLToPath(new URL('../test/fixtures/gatedWriter.mjs', import.meta.url));

/** What gatedWriter.mjs prints in all: its 64 KiB blocks, cut to `bytes`. */
function expectedOutput(bytes: number): Buffer {
  const blocks: Buffer[] = [];
  for (let n = 0, have = 0; have < bytes; n++, have += 64 * 1024) {
    const digest = createHash('sha256').update(`block-${n}`).digest();
    blocks.push(Buffer.concat(Array.from({ length: (64 * 1024) / digest.length }, () => digest)));
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const stdoutOf = (events: readonly StoredEvent[]) => Buffer.concat(events.flatMap((e) => (e.type === 'OutputProduced' && e.data.stream === 'stdout' ? [e.data.data] : [])));

afterAll(async () => {
  await removeTempDirs();
  if (!skip) await (disk as SmallDisk).unmount();
});

describe.skipIf(skip !== undefined)(`a daemon whose disk fills up${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('stays up, reports the store in health, refuses writers with DISK_FULL, ends followers, keeps the command running, and records all of its output once space is freed', async () => {
    const small = disk as SmallDisk;
    const gates = join(await tempDir(), 'gate');
    const daemon = await startDaemon({
      listen: '127.0.0.1:0',
      dataDir: join(small.dir, 'state'),
      plugins: backends(await tempDir()),
      store: { retryMinMs: 50, retryMaxMs: 250 },
    });
    const machine = remoteMachine(daemon.url, { token: await readToken(daemon.tokenFile!) });
    try {
      const before = await machine.exec.start({ command: 'echo written before the disk filled' });
      await machine.exec.wait(before.id);
      const beforeEvents = (await machine.exec.read(before.id)).events;

      // 256 KiB, then (disk full) 2 MiB, then (space freed) 512 KiB more.
      const phases = [256 * 1024, 2 * 1024 * 1024, 512 * 1024];
      const total = phases.reduce((a, b) => a + b, 0);
      const run = await machine.exec.start({ argv: [process.execPath, writer, phases.join(','), gates] });
      const cat = await machine.exec.start({ command: 'cat', stdin: true });
      let pid = 0;
      await eventually(async () => (pid = (await machine.exec.get(run.id)).pid ?? 0) > 0);
      let followed = 0;
      const followEnd = new Promise<unknown>((resolve) => {
        machine.exec.follow(run.id).subscribe({
          next: (event) => {
            if (event.type === 'OutputProduced') followed += event.data.data.byteLength;
          },
          error: resolve,
          complete: () => resolve('completed'),
        });
      });
      await eventually(() => followed >= phases[0]!, 20_000, 'the first phase followed');

      await small.fill();
      await writeFile(`${gates}1`, '');
      // The follower is told, rather than left waiting.
      const ended = await followEnd;
      expect(isTetherError(ended, 'DISK_FULL'), String(ended)).toBe(true);

      const health = await machine.health();
      expect(health.ok).toBe(false);
      expect(health.store).toMatchObject({ ok: false, code: 'DISK_FULL', dir: join(small.dir, 'state', 'events') });

      // Writers get DISK_FULL naming the directory; the daemon keeps answering; reads work.
      const refused = await rejection(machine.exec.start({ command: 'echo refused' }));
      expect(refused.code).toBe('DISK_FULL');
      expect(refused.message).toContain(join(small.dir, 'state', 'events'));
      // Input and signals that could not be recorded are refused, not delivered.
      expect((await rejection(machine.exec.write(cat.id, 'lost?\n'))).code).toBe('DISK_FULL');
      expect((await rejection(machine.exec.signal(cat.id, 'TERM'))).code).toBe('DISK_FULL');
      expect((await machine.exec.read(before.id)).events).toEqual(beforeEvents);
      expect(await machine.exec.get(run.id)).toMatchObject({ status: 'running' });
      expect((await machine.exec.logs(run.id, { tailBytes: 100 })).lines.length).toBeGreaterThan(0);
      expect(await machine.exec.list()).toMatchObject({ items: expect.arrayContaining([expect.objectContaining({ id: run.id })]) });
      // The command was not killed: its output waits in the daemon (then in its pipe).
      expect(() => process.kill(pid, 0)).not.toThrow();

      await small.free();
      await eventually(async () => (await machine.health()).ok, 30_000, 'health ok again');
      await writeFile(`${gates}2`, '');
      const done = await machine.exec.wait(run.id);
      expect(done).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0 });

      const events: StoredEvent[] = [];
      for (let after = 0; ; ) {
        const page = await machine.exec.read(run.id, { afterSeq: after });
        events.push(...page.events);
        if (page.events.length === 0 || page.lastSeq === after) break;
        after = page.events.at(-1)!.seq;
        if (after === page.lastSeq) break;
      }
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.type === 'ExecutionStarted')).toHaveLength(1);
      expect(stdoutOf(events).byteLength).toBe(total);
      expect(sha(stdoutOf(events))).toBe(sha(expectedOutput(total)));
      expect((await machine.exec.read(before.id)).events).toEqual(beforeEvents);
      // Writers are served again; cat got only what was written after the recovery.
      await machine.exec.write(cat.id, 'after\n', { eof: true });
      expect(await machine.exec.wait(cat.id)).toMatchObject({ endReason: 'exited', exitCode: 0 });
      expect((await machine.exec.logs(cat.id)).lines.map((l) => l.line)).toEqual(['after']);
      const after = await machine.exec.start({ command: 'echo after' });
      expect((await machine.exec.wait(after.id)).exitCode).toBe(0);
    } finally {
      await machine.close();
      await daemon.close();
    }
  });
});
