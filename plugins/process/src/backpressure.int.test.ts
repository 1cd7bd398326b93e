import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { Harness } from '../test/harness.js';

const harness = new Harness();
afterEach(() => harness.cleanup());

const MiB = 1024 * 1024;

/** Bytes the process has written so far (`wchar` in /proc/<pid>/io); undefined once it is gone. */
function writtenBy(pid: number): number | undefined {
  try {
    return Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

it('reads 256 MiB byte-identical through pause/resume cycles, reading nothing and holding no memory while paused', async () => {
  const size = 256 * MiB;
  const expected = createHash('sha256');
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < size / MiB; i++) expected.update(zeros);

  const proc = await harness.start({ argv: ['head', '-c', String(size), '/dev/zero'] });
  const hash = createHash('sha256');
  let bytes = 0;
  let paused = false;
  let deliveredWhilePaused = 0;
  let nextPauseAt = 4 * MiB;
  let cycles = 0;
  let peakRssGrowth = 0;
  let rssAtFirstPause: number | undefined;
  let largestBacklog = 0;
  let backlogsMeasured = 0;

  await new Promise<void>((resolve, reject) => {
    proc.output$.subscribe({
      next: (chunk) => {
        if (paused) deliveredWhilePaused += chunk.data.byteLength;
        hash.update(chunk.data);
        bytes += chunk.data.byteLength;
        if (bytes < nextPauseAt) return;
        nextPauseAt += 12 * MiB;
        paused = true;
        proc.pauseOutput();
        // A deliberate pause: while it lasts the process must be held back by the full pipe, not
        // buffered here. If it were buffered, memory would grow by the output rate times the pause.
        setTimeout(() => {
          // Written by head but not yet delivered: all of it must fit in the pipe and the stream's
          // small buffer, else we kept reading into memory while paused.
          const written = writtenBy(proc.pid);
          if (written !== undefined) {
            largestBacklog = Math.max(largestBacklog, written - bytes);
            backlogsMeasured++;
          }
          const rss = process.memoryUsage().rss;
          rssAtFirstPause ??= rss;
          peakRssGrowth = Math.max(peakRssGrowth, rss - rssAtFirstPause);
          paused = false;
          cycles++;
          proc.resumeOutput();
        }, 40);
      },
      error: reject,
      complete: resolve,
    });
  });

  expect((await proc.exit).exitCode).toBe(0);
  expect(bytes).toBe(size);
  expect(hash.digest('hex')).toBe(expected.digest('hex'));
  expect(deliveredWhilePaused).toBe(0);
  expect(cycles).toBeGreaterThanOrEqual(20);
  expect(backlogsMeasured).toBeGreaterThanOrEqual(15);
  expect(largestBacklog).toBeLessThanOrEqual(2 * MiB);
  // Loose on purpose (garbage collection comes and goes); output held in memory would be hundreds of MiB.
  expect(peakRssGrowth).toBeLessThan(96 * MiB);
});
