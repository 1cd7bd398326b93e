// The sync engine between two real LocalFileSystemBackends on temp dirs.
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFileSystemBackend } from '@tether/plugin-filesystem';
import type { FileSystemConfigInput } from '@tether/plugin-filesystem';
import { isTetherError, syncDirectory, type ErrorCode, type FsApi, type SyncOptions, type SyncProgress } from '@tether/core';

let base: string;
let src: string;
let dst: string;
let outside: string;
let srcFs: LocalFileSystemBackend;
let dstFs: LocalFileSystemBackend;
const backends: LocalFileSystemBackend[] = [];

function backend(root: string, config: FileSystemConfigInput = {}): LocalFileSystemBackend {
  const created = new LocalFileSystemBackend({ roots: [root], ...config });
  backends.push(created);
  return created;
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'tether-sync-'));
  src = join(base, 'src');
  dst = join(base, 'dst');
  outside = join(base, 'outside');
  await Promise.all([mkdir(src), mkdir(dst), mkdir(outside)]);
  srcFs = backend(src);
  dstFs = backend(dst);
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  await rm(base, { recursive: true, force: true });
});

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Writes `content` at `rel` under `dir` with `mode`, creating parents. */
async function put(dir: string, rel: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
  const path = join(dir, rel);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  await chmod(path, mode);
}

/** Every entry under `dir`: type, permission bits and a sha256 of each file (symlinks by their target). */
async function describeTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const path = join(dir, childRel);
      const st = await lstat(path);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[childRel] = `dir ${mode}`;
        await walk(childRel);
      } else if (st.isSymbolicLink()) {
        out[childRel] = `link ${await readlink(path)}`;
      } else {
        out[childRel] = `file ${mode} ${st.size} ${sha(await readFile(path))}`;
      }
    }
  };
  await walk('');
  return out;
}

/** A tree with nested and empty directories, binary files, modes, and one file larger than 1000 bytes. */
async function makeTree(dir: string): Promise<void> {
  await put(dir, 'README.md', '# hello\n');
  await put(dir, 'bin/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  await put(dir, 'secret/key', 'k'.repeat(32), 0o600);
  await put(dir, 'ro.txt', 'read only', 0o444);
  await put(dir, 'data/blob.bin', randomBytes(777));
  await put(dir, 'data/big.bin', randomBytes(10_017));
  await put(dir, 'data/exact.bin', randomBytes(1000));
  await put(dir, 'data/empty.bin', new Uint8Array(0));
  await put(dir, 'a/b/c/d/deep.txt', 'deep');
  await mkdir(join(dir, 'empty/nested-empty'), { recursive: true });
  await mkdir(join(dir, 'private'), { mode: 0o750 });
  await chmod(join(dir, 'private'), 0o750);
}

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | string> {
  try {
    await promise;
  } catch (error) {
    return isTetherError(error) ? error.code : `not a TetherError: ${String(error)}`;
  }
  return 'resolved';
}

/** The real backend, with every call's method and first argument recorded. */
function recording(fs: FsApi): { fs: FsApi; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(fs, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(`${String(key)} ${typeof args[0] === 'string' ? args[0] : ''}`.trim());
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { fs: proxy, calls };
}

const sync = (options: SyncOptions = {}, from: FsApi = srcFs, to: FsApi = dstFs, fromPath = src, toPath = dst) =>
  syncDirectory({ fs: from, path: fromPath }, { fs: to, path: toPath }, { chunkBytes: 1000, ...options });

describe('syncDirectory', () => {
  it('copies a tree (nested and empty directories, binary files, modes, a chunked file) and a second run transfers nothing', async () => {
    await makeTree(src);
    const target = recording(dstFs);
    const first = await sync({}, srcFs, target.fs);
    expect(first).toMatchObject({ ok: true, files: 9, deleted: 0, skipped: [] });
    expect(first.bytes).toBe(8 + 18 + 32 + 9 + 777 + 10_017 + 1000 + 0 + 4);
    expect(await describeTree(dst)).toEqual(await describeTree(src));
    // One atomic write for each file up to chunkBytes, the chunked upload for the larger one.
    expect(target.calls.filter((c) => c.startsWith('write ')).length).toBe(8);
    expect(target.calls.filter((c) => c.startsWith('beginWrite ')).map((c) => c.split('/').pop())).toEqual(['big.bin']);
    expect(target.calls.filter((c) => c.startsWith('writeChunk')).length).toBe(11);

    target.calls.length = 0;
    const second = await sync({}, srcFs, target.fs);
    expect(second).toMatchObject({ ok: true, files: 0, bytes: 0, deleted: 0 });
    expect(target.calls.filter((c) => /^(write|beginWrite|mkdir|remove|move)\b/.test(c))).toEqual([]);
  });

  it('transfers a file whose content, size or mode changed, and only that file', async () => {
    await makeTree(src);
    await sync();
    const big = await readFile(join(src, 'data/big.bin'));
    big[9_999] = big[9_999]! ^ 0xff; // same size, one byte differs near the end
    await writeFile(join(src, 'data/big.bin'), big);
    expect(await sync()).toMatchObject({ ok: true, files: 1, bytes: 10_017 });
    await put(src, 'README.md', '# hello, longer\n');
    expect(await sync()).toMatchObject({ files: 1, bytes: 16 });
    await chmod(join(src, 'bin/run.sh'), 0o700);
    expect(await sync()).toMatchObject({ files: 1 });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('compare: size misses a same-size edit, always copies everything', async () => {
    await makeTree(src);
    await sync();
    await put(src, 'README.md', '# HELLO\n');
    expect(await sync({ compare: 'size' })).toMatchObject({ files: 0 });
    expect(await readFile(join(dst, 'README.md'), 'utf8')).toBe('# hello\n');
    expect(await sync({ compare: 'always' })).toMatchObject({ files: 9 });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('delete removes target entries the source lacks, but never excluded ones', async () => {
    await makeTree(src);
    await put(dst, 'stale.txt', 'old');
    await put(dst, 'old-dir/x/y.txt', 'old');
    await put(dst, 'data/leftover.bin', 'old');
    await put(dst, 'debug.log', 'keep me');
    await put(dst, 'gone/node_modules/pkg/index.js', 'keep me too');
    await put(dst, 'gone/other.txt', 'remove me');

    const without = await sync({ exclude: ['*.log', 'node_modules'] });
    expect(without.deleted).toBe(0);
    expect(await readFile(join(dst, 'stale.txt'), 'utf8')).toBe('old');

    const result = await sync({ exclude: ['*.log', 'node_modules'], delete: true });
    // stale.txt, old-dir (whole), data/leftover.bin, gone/other.txt; gone/ stays for its node_modules.
    expect(result).toMatchObject({ ok: true, files: 0, deleted: 4 });
    const tree = await describeTree(dst);
    expect(tree['debug.log']).toMatch(/^file/);
    expect(tree['gone/node_modules/pkg/index.js']).toMatch(/^file/);
    expect(tree['gone/other.txt']).toBeUndefined();
    const { ['debug.log']: _log, ['gone']: _g, ['gone/node_modules']: _n, ['gone/node_modules/pkg']: _p, ['gone/node_modules/pkg/index.js']: _i, ...rest } = tree;
    expect(rest).toEqual(await describeTree(src));
  });

  it('excludes entries by name, by anchored path and below a directory', async () => {
    await makeTree(src);
    await put(src, 'node_modules/dep/index.js', 'x');
    await put(src, 'pkg/node_modules/dep/index.js', 'x');
    await put(src, 'logs/today.log', 'x');
    await put(src, 'build/out/app.js', 'x');
    await put(src, 'build/app.map', 'x');
    await put(src, 'src/build/keep.js', 'kept: build/** is anchored');
    const result = await sync({ exclude: ['node_modules', '*.log', 'build/**'] });
    expect(result.ok).toBe(true);
    const tree = await describeTree(dst);
    expect(Object.keys(tree).filter((p) => p.includes('node_modules') || p.endsWith('.log'))).toEqual([]);
    expect(tree['build']).toMatch(/^dir/);
    expect(Object.keys(tree).filter((p) => p.startsWith('build/'))).toEqual([]);
    expect(tree['logs']).toMatch(/^dir/);
    expect(tree['src/build/keep.js']).toMatch(/^file/);
  });

  it('copies symlinks that stay inside the tree as symlinks; skips and reports the others, never following one out', async () => {
    await makeTree(src);
    await put(outside, 'secret.txt', 'outside the tree');
    await symlink(outside, join(src, 'escape'));
    await symlink('README.md', join(src, 'inner-link'));
    await symlink('../README.md', join(src, 'bin', 'up-link'));
    await symlink('../../x', join(src, 'bin', 'climbs-out'));
    const result = await sync();
    expect(result).toMatchObject({ ok: true, links: 2 });
    expect(result.skipped).toEqual([
      { path: 'bin/climbs-out', reason: 'symlink', message: 'a symbolic link to ../../x, which leads outside the synced tree: not copied' },
      { path: 'escape', reason: 'symlink', message: `a symbolic link to ${outside}, which leads outside the synced tree: not copied` },
    ]);
    const tree = await describeTree(dst);
    expect(tree['escape']).toBeUndefined();
    expect(tree['inner-link']).toBe('link README.md');
    expect(tree['bin/up-link']).toBe('link ../README.md');
    expect(Object.values(tree).some((d) => d.includes(sha(Buffer.from('outside the tree'))))).toBe(false);
    // Again: the links are there already.
    expect(await sync()).toMatchObject({ ok: true, files: 0, links: 0 });
  });

  it('a target backend refuses a link that would leave its roots; the sync reports it and goes on', async () => {
    await put(src, 'a.txt', 'a');
    await symlink('a.txt', join(src, 'link'));
    // A target whose links would lead to `outside`: the filesystem backend refuses each one.
    const escaping = new Proxy(dstFs, {
      get: (fs, key) => (key === 'symlink' ? (_target: string, path: string) => fs.symlink(outside, path) : Reflect.get(fs, key, fs)?.bind?.(fs) ?? Reflect.get(fs, key, fs)),
    }) as FsApi;
    const links = await sync({}, srcFs, escaping);
    expect(links).toMatchObject({ ok: true, files: 1, links: 0 });
    expect(links.skipped).toEqual([expect.objectContaining({ path: 'link', reason: 'symlink', message: expect.stringMatching(/path not allowed/) })]);
  });

  it('refuses to delete from a target that is not a mirror of the source, unless forced; a dry run changes nothing', async () => {
    await put(src, 'a.txt', 'a');
    await put(dst, 'unrelated1', '1');
    await put(dst, 'unrelated2', '2');
    const refused = await sync({ delete: true }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isTetherError(refused, 'INVALID_ARGUMENT')).toBe(true);
    expect((refused as { details: Record<string, unknown> }).details).toMatchObject({ reason: 'not-a-mirror', wouldDelete: ['unrelated1', 'unrelated2'] });
    expect(Object.keys(await describeTree(dst))).toEqual(['unrelated1', 'unrelated2']);

    const dry = await sync({ delete: true, forceDelete: true, dryRun: true });
    expect(dry).toMatchObject({ files: 1, deleted: 2, planned: { copy: ['a.txt'], delete: ['unrelated1', 'unrelated2'], link: [] } });
    expect(Object.keys(await describeTree(dst))).toEqual(['unrelated1', 'unrelated2']);

    expect(await sync({ delete: true, forceDelete: true })).toMatchObject({ ok: true, files: 1, deleted: 2 });
    // Now it is a mirror: delete needs no force.
    await put(dst, 'stray', 's');
    expect(await sync({ delete: true })).toMatchObject({ ok: true, deleted: 1 });
  });

  it('replaces a target symlink instead of writing through it', async () => {
    await put(src, 'a.txt', 'from source');
    await put(src, 'sub/b.txt', 'b');
    await put(dst, 'victim.txt', 'must stay');
    await symlink('victim.txt', join(dst, 'a.txt'));
    await mkdir(join(dst, 'elsewhere'));
    await symlink('elsewhere', join(dst, 'sub'));
    const result = await sync();
    expect(result).toMatchObject({ ok: true, files: 2, deleted: 2 });
    expect(await readFile(join(dst, 'victim.txt'), 'utf8')).toBe('must stay');
    expect((await lstat(join(dst, 'a.txt'))).isFile()).toBe(true);
    expect((await lstat(join(dst, 'sub'))).isDirectory()).toBe(true);
    expect(await readdir(join(dst, 'elsewhere'))).toEqual([]);
  });

  it('resolves type conflicts: a file over a directory needs delete unless the directory is empty', async () => {
    await put(src, 'x', 'now a file');
    await put(src, 'y', 'now a file too');
    await put(src, 'z/inner.txt', 'now a directory');
    await put(dst, 'x/old.txt', 'was a directory');
    await mkdir(join(dst, 'y'));
    await put(dst, 'z', 'was a file');
    const plain = await sync();
    expect(plain.ok).toBe(false);
    expect(plain.skipped).toEqual([expect.objectContaining({ path: 'x', reason: 'conflict' })]);
    expect(await readFile(join(dst, 'y'), 'utf8')).toBe('now a file too');
    expect(await readFile(join(dst, 'z/inner.txt'), 'utf8')).toBe('now a directory');
    expect(await readFile(join(dst, 'x/old.txt'), 'utf8')).toBe('was a directory');

    const withDelete = await sync({ delete: true });
    expect(withDelete).toMatchObject({ ok: true, files: 1, deleted: 1, skipped: [] });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('syncs a single file to a path or into a directory', async () => {
    await put(src, 'one.bin', randomBytes(2500), 0o640);
    const file = join(src, 'one.bin');
    expect(await sync({}, srcFs, dstFs, file, join(dst, 'new/dir/renamed.bin'))).toMatchObject({ ok: true, files: 1, bytes: 2500 });
    expect(await sync({}, srcFs, dstFs, file, dst)).toMatchObject({ ok: true, files: 1, bytes: 2500 });
    expect(await sync({}, srcFs, dstFs, file, dst)).toMatchObject({ ok: true, files: 0 });
    const tree = await describeTree(dst);
    const want = (await describeTree(src))['one.bin'];
    expect(tree['one.bin']).toBe(want);
    expect(tree['new/dir/renamed.bin']).toBe(want);
  });

  it('fails with PATH_NOT_FOUND for a missing source, NOT_A_DIRECTORY for a file target, INVALID_ARGUMENT for bad input', async () => {
    await put(dst, 'file', 'x');
    await put(src, 'a', 'a');
    expect(await codeOf(sync({}, srcFs, dstFs, join(src, 'missing')))).toBe('PATH_NOT_FOUND');
    expect(await codeOf(sync({}, srcFs, dstFs, src, join(dst, 'file')))).toBe('NOT_A_DIRECTORY');
    expect(await codeOf(sync({}, srcFs, dstFs, outside))).toBe('PATH_OUTSIDE_ROOT');
    expect(await codeOf(sync({ concurrency: 0 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(sync({ chunkBytes: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(sync({ exclude: ['!x'] }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(sync({ compare: 'mtime' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(sync({}, srcFs, srcFs, src, join(src, 'inside')))).toBe('INVALID_ARGUMENT');
    expect(await readFile(join(dst, 'file'), 'utf8')).toBe('x');
  });

  it('reports progress that never decreases and ends at the totals', async () => {
    await makeTree(src);
    const seen: SyncProgress[] = [];
    await sync({ onProgress: (p) => seen.push(p) });
    const last = seen.at(-1)!;
    expect(last).toMatchObject({ files: 9, totalFiles: 9, totalBytes: 8 + 18 + 32 + 9 + 777 + 10_017 + 1000 + 0 + 4 });
    expect(last.bytes).toBe(last.totalBytes);
    expect(seen.filter((p) => p.path === 'data/big.bin').length).toBeGreaterThan(10); // per chunk
    for (const [i, p] of seen.entries()) {
      const before = seen[i - 1];
      if (before) {
        expect(p.files).toBeGreaterThanOrEqual(before.files);
        expect(p.bytes).toBeGreaterThanOrEqual(before.bytes);
      }
      expect(p.bytes).toBeLessThanOrEqual(p.totalBytes);
    }

    // A run that only compares walks the same totals.
    seen.length = 0;
    expect(await sync({ onProgress: (p) => seen.push(p) })).toMatchObject({ files: 0 });
    expect(seen.at(-1)).toMatchObject({ files: 9, totalFiles: 9, bytes: last.totalBytes });
  });

  it('adapts to backends whose per-call limits are below chunkBytes', async () => {
    await makeTree(src);
    const smallSrc = backend(src, { maxReadBytes: 300 });
    const smallDst = backend(dst, { maxWriteBytes: 256, maxReadBytes: 200 });
    expect(await sync({ chunkBytes: 4096 }, smallSrc, smallDst)).toMatchObject({ ok: true, files: 9 });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
    expect(await sync({ chunkBytes: 4096 }, smallSrc, smallDst)).toMatchObject({ ok: true, files: 0 });
  });

  it('leaves the target as it was when a source file changes while it is read', async () => {
    await put(src, 'growing.log', randomBytes(5000));
    await put(dst, 'growing.log', 'old copy');
    const source = new Proxy(srcFs as FsApi, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (key !== 'read' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: Parameters<FsApi['read']>) => {
          const result = await target.read(...args);
          await appendFile(join(src, 'growing.log'), 'more'); // a writer appends after every read
          return result;
        };
      },
    });
    const result = await sync({}, source);
    expect(result.ok).toBe(false);
    expect(result.skipped).toEqual([expect.objectContaining({ path: 'growing.log', reason: 'changed' })]);
    expect(result.files).toBe(0);
    expect(await readFile(join(dst, 'growing.log'), 'utf8')).toBe('old copy');
    expect((await readdir(dst)).filter((n) => n.startsWith('.tether-'))).toEqual([]);
  });

  it('fails with ABORTED when aborted, leaving no partial upload behind', async () => {
    for (let i = 0; i < 20; i++) await put(src, `f${String(i).padStart(2, '0')}.bin`, randomBytes(5000));
    const controller = new AbortController();
    const code = await codeOf(
      sync({
        concurrency: 2,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.bytes > 20_000) controller.abort();
        },
      }),
    );
    expect(code).toBe('ABORTED');
    const copied = (await readdir(dst)).filter((n) => n.endsWith('.bin'));
    expect(copied.length).toBeGreaterThan(0);
    expect(copied.length).toBeLessThan(20);
    expect((await readdir(dst)).filter((n) => n.startsWith('.tether-'))).toEqual([]);
    for (const name of copied) expect(sha(await readFile(join(dst, name)))).toBe(sha(await readFile(join(src, name))));
  });
});
