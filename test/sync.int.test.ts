// sync push and pull between a local filesystem and a RemoteMachine (JSON-RPC over an in-memory
// channel to a kernel with the real plugins and LevelDB), hashing every file on both sides.
import { createHash } from 'node:crypto';
import { appendFile, chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createChannelPair, createKernel, RemoteMachine, serveMachine, syncDirectory, type Kernel, type SyncProgress, type SyncResult } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin, { LocalFileSystemBackend } from '@tether/plugin-filesystem';

const MiB = 1024 * 1024;

let base: string;
let localDir: string;
let remoteDir: string;
let store: LevelEventStore;
let kernel: Kernel;
let remote: RemoteMachine;
let local: LocalFileSystemBackend;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'tether-sync-int-'));
  localDir = join(base, 'local');
  remoteDir = join(base, 'remote');
  await Promise.all([mkdir(localDir), mkdir(remoteDir)]);
  store = await LevelEventStore.open(join(base, 'events'));
  kernel = await createKernel({ plugins: [processPlugin, { plugin: filesystemPlugin, config: { roots: [remoteDir] } }], store });
  if (kernel.plugins.failed.length > 0) throw kernel.plugins.failed[0]!.error;
  const machine = kernel.machine('local');
  remote = new RemoteMachine({
    name: 'memory',
    connect: async () => {
      const [client, server] = createChannelPair();
      serveMachine(machine, server);
      return client;
    },
  });
  local = new LocalFileSystemBackend({ roots: [localDir] });
});

afterAll(async () => {
  await local?.close();
  await remote?.close();
  await kernel?.close();
  await store?.close();
  await rm(base, { recursive: true, force: true });
});

/** Deterministic pseudo-random bytes (xorshift), so a failure reproduces. */
function bytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** ~200 files in nested directories (sizes 0 B – 96 KiB, a few modes), one of 20 MiB, an empty directory. */
async function makeTree(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let total = 0;
  const add = async (rel: string, data: Uint8Array, mode = 0o644) => {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), data);
    await chmod(join(dir, rel), mode);
    files++;
    total += data.byteLength;
  };
  for (let i = 0; i < 199; i++) {
    const rel = `d${i % 7}/s${i % 3}/${i % 11 === 0 ? 'deeper/' : ''}file-${i}.bin`;
    await add(rel, bytes(i + 1, (i * 7919) % (96 * 1024)), i % 13 === 0 ? 0o755 : 0o644);
  }
  await add('weights/model.bin', bytes(424242, 20 * MiB));
  await mkdir(join(dir, 'empty/inside'), { recursive: true });
  return { files, bytes: total };
}

/** Every entry under `dir`: directories with their mode, files with mode, size and sha256. */
async function describeTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel))) {
      const childRel = rel ? `${rel}/${name}` : name;
      const st = await stat(join(dir, childRel));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out.set(childRel, `dir ${mode}`);
        await walk(childRel);
      } else {
        out.set(childRel, `file ${mode} ${st.size} ${createHash('sha256').update(await readFile(join(dir, childRel))).digest('hex')}`);
      }
    }
  };
  await walk('');
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

function checkProgress(seen: readonly SyncProgress[], result: SyncResult, totals: { files: number; bytes: number }): void {
  expect(seen.length).toBeGreaterThan(totals.files);
  for (const [i, p] of seen.entries()) {
    expect(p.totalFiles).toBe(totals.files);
    expect(p.totalBytes).toBe(totals.bytes);
    const before = seen[i - 1];
    if (before) {
      expect(p.files).toBeGreaterThanOrEqual(before.files);
      expect(p.bytes).toBeGreaterThanOrEqual(before.bytes);
    }
  }
  expect(seen.at(-1)).toMatchObject({ files: totals.files, bytes: totals.bytes });
  expect(result).toMatchObject({ ok: true, files: totals.files, bytes: totals.bytes, skipped: [] });
}

it('pushes a tree to a remote machine and pulls it back, byte-identical', async () => {
  const pushedFrom = join(localDir, 'project');
  const totals = await makeTree(pushedFrom);
  expect(totals.files).toBe(200);

  const pushProgress: SyncProgress[] = [];
  const pushed = await syncDirectory({ fs: local, path: pushedFrom }, { fs: remote.fs, path: join(remoteDir, 'project') }, { onProgress: (p) => pushProgress.push(p) });
  checkProgress(pushProgress, pushed, totals);
  const source = await describeTree(pushedFrom);
  expect(await describeTree(join(remoteDir, 'project'))).toEqual(source);
  expect(source.get('empty/inside')).toMatch(/^dir/);

  const pullProgress: SyncProgress[] = [];
  const pulled = await syncDirectory({ fs: remote.fs, path: join(remoteDir, 'project') }, { fs: local, path: join(localDir, 'pulled') }, { onProgress: (p) => pullProgress.push(p) });
  checkProgress(pullProgress, pulled, totals);
  expect(await describeTree(join(localDir, 'pulled'))).toEqual(source);

  // Nothing changed: nothing is written, in either direction.
  expect(await syncDirectory({ fs: local, path: pushedFrom }, { fs: remote.fs, path: join(remoteDir, 'project') })).toMatchObject({ ok: true, files: 0, bytes: 0 });
  expect(await syncDirectory({ fs: remote.fs, path: join(remoteDir, 'project') }, { fs: local, path: join(localDir, 'pulled') })).toMatchObject({ ok: true, files: 0, bytes: 0 });
});

it('pushes only what changed and, with delete, removes what the source dropped', async () => {
  const from = join(localDir, 'changing');
  const to = join(remoteDir, 'changing');
  await makeTree(from);
  await syncDirectory({ fs: local, path: from }, { fs: remote.fs, path: to });

  const model = await readFile(join(from, 'weights/model.bin'));
  model[15 * MiB + 3] = model[15 * MiB + 3]! ^ 1; // one bit, in the fourth 4 MiB chunk
  await writeFile(join(from, 'weights/model.bin'), model);
  await appendFile(join(from, 'd0/s0/file-0.bin'), 'grown');
  await writeFile(join(from, 'new.txt'), 'new');
  await rm(join(from, 'd1/s1/file-1.bin'));
  await rm(join(from, 'd2'), { recursive: true });
  await writeFile(join(from, 'build.log'), 'local only');
  await writeFile(join(to, 'remote.log'), 'remote only, excluded');

  const result = await syncDirectory({ fs: local, path: from }, { fs: remote.fs, path: to }, { delete: true, exclude: ['*.log'] });
  expect(result).toMatchObject({ ok: true, files: 3, bytes: 20 * MiB + (await stat(join(from, 'd0/s0/file-0.bin'))).size + 3, deleted: 2 });
  const want = await describeTree(from);
  want.delete('build.log');
  const got = await describeTree(to);
  expect(got.get('remote.log')).toMatch(/^file/);
  got.delete('remote.log');
  expect(got).toEqual(want);
});
