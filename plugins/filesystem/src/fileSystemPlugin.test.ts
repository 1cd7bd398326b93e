import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { FileSystemBackend, PLUGIN_API_VERSION, createKernel } from '@tether/core';
import plugin from './index.js';
import { LocalFileSystemBackend } from './localFileSystemBackend.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tether-fs-plugin-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

it('loads into a kernel and serves the local machine, confined to its roots', async () => {
  expect(plugin.name).toBe('@tether/plugin-filesystem');
  expect(plugin.apiVersion).toBe(PLUGIN_API_VERSION);
  const kernel = await createKernel({ plugins: [{ plugin, config: { roots: [root], maxReadBytes: 4096 } }] });
  try {
    expect(kernel.plugins.failed).toEqual([]);
    const backend = kernel.container.resolve(FileSystemBackend);
    expect(backend).toBeInstanceOf(LocalFileSystemBackend);
    expect((backend as LocalFileSystemBackend).config).toMatchObject({ maxReadBytes: 4096, maxWriteBytes: 16 * 1024 * 1024 });
    const fs = kernel.machine('local').fs;
    await fs.write('hello.txt', new TextEncoder().encode('hi'));
    expect(new TextDecoder().decode((await fs.read(join(root, 'hello.txt'))).data)).toBe('hi');
    await expect(fs.read('../x')).rejects.toMatchObject({ code: 'PATH_OUTSIDE_ROOT' });
    await fs.beginWrite('pending.txt');
    expect(await readdir(root)).toHaveLength(2);
  } finally {
    await kernel.close();
  }
  expect(await readdir(root)).toEqual(['hello.txt']); // closing the kernel aborted the upload
});

it('is reported, not thrown, when its config is invalid or a root is missing', async () => {
  // `root` (a typo of `roots`) is refused rather than ignored, which would serve the default roots.
  for (const config of [{ roots: ['relative'] }, { roots: [] }, { maxFileBytes: 0 }, { roots: [join(root, 'missing')] }, { root: [root] }]) {
    const kernel = await createKernel({ plugins: [{ plugin, config }] });
    try {
      expect(kernel.plugins.failed.map((f) => f.name)).toEqual(['@tether/plugin-filesystem']);
    } finally {
      await kernel.close();
    }
  }
});
