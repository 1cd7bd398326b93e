// A 1 GiB output flood through the process backend into LevelDB: every byte recorded, in order,
// while this process's memory stays bounded (the backend is paused while the store catches up).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { createKernel } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import { eventually, withTempDir } from './support.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

it('records 1 GiB of random output byte-identical with bounded memory', async () => {
  await withTempDir(async (dir) => {
    const store = await LevelEventStore.open(join(dir, 'events'), { maxOutputBytesPerExecution: 2 * GIB });
    const kernel = await createKernel({ plugins: [processPlugin], store });
    const exec = kernel.machine('local').exec;
    try {
      const hashFile = join(dir, 'producer.sha256');
      global.gc?.();
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      const started = await exec.start({ command: `head -c ${GIB} /dev/urandom | tee >(sha256sum > ${hashFile})`, shell: 'bash' });
      const state = await exec.wait(started.id);
      clearInterval(sampler);
      expect(state).toMatchObject({ endReason: 'exited', exitCode: 0, truncatedBytes: 0, bytes: { stdout: GIB } });

      // Hash what the store holds, page by page.
      const hash = createHash('sha256');
      let after = 0;
      let bytes = 0;
      for (;;) {
        const page = await store.read(started.id, { afterSeq: after, limit: 512 });
        if (page.length === 0) break;
        for (const event of page) {
          expect(event.seq).toBe(after + 1);
          after = event.seq;
          if (event.type === 'OutputProduced') {
            hash.update(event.data.data);
            bytes += event.data.data.byteLength;
          }
        }
      }
      expect(bytes).toBe(GIB);
      await eventually(async () => (await readFile(hashFile, 'utf8').catch(() => '')).length >= 64);
      expect(hash.digest('hex')).toBe((await readFile(hashFile, 'utf8')).split(' ')[0]);
      // Far less than the output: nothing buffered it whole.
      expect(peak - baseline).toBeLessThan(384 * MIB);
    } finally {
      await kernel.close();
      await store.close();
    }
  });
});
