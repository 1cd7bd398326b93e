import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TetherError, type ErrorCode } from '@tether/core';
import { rejection } from '@tether/core/testing';
import { LocalFileSystemBackend } from './localFileSystemBackend.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const codeOf = async (promise: Promise<unknown>): Promise<ErrorCode> => (await rejection(promise)).code;

let base: string;
let root: string;
let outside: string;
let fsb: LocalFileSystemBackend;
const backends: LocalFileSystemBackend[] = [];

function backend(config: ConstructorParameters<typeof LocalFileSystemBackend>[0] = {}, options = {}): LocalFileSystemBackend {
  const created = new LocalFileSystemBackend({ roots: [root], ...config }, options);
  backends.push(created);
  return created;
}

const tempFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith('.tether-'));

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'tether-fs-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(join(outside, 'secret.txt'), 'SECRET');
  fsb = backend();
});

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()));
  await rm(base, { recursive: true, force: true });
});

describe('construction', () => {
  it('resolves roots with realpath and refuses a missing root', async () => {
    await symlink(root, join(base, 'rootlink'));
    const viaLink = backend({ roots: [join(base, 'rootlink')] });
    await writeFile(join(root, 'a.txt'), 'a');
    expect(viaLink.roots).toEqual([await realpath(root)]);
    expect(dec((await viaLink.read(join(base, 'rootlink', 'a.txt'))).data)).toBe('a');
    expect(dec((await viaLink.read(join(root, 'a.txt'))).data)).toBe('a');
    expect(() => new LocalFileSystemBackend({ roots: [join(base, 'nope')] })).toThrow(TetherError);
    expect(() => new LocalFileSystemBackend({ roots: ['relative/dir'] })).toThrow(/absolute/);
    expect(() => new LocalFileSystemBackend({ maxReadBytes: -1 })).toThrow(TetherError);
  });

  it('defaults the roots to the home directory plus dataDir, and expands ~', async () => {
    const home = join(base, 'home');
    await mkdir(home);
    await writeFile(join(home, 'h.txt'), 'home');
    await writeFile(join(outside, 'd.txt'), 'data');
    const saved = process.env['HOME'];
    process.env['HOME'] = home;
    try {
      const b = new LocalFileSystemBackend({ dataDir: outside });
      backends.push(b);
      expect(b.roots).toHaveLength(2);
      expect(dec((await b.read('~/h.txt')).data)).toBe('home');
      expect(dec((await b.read('h.txt')).data)).toBe('home'); // relative: against the first root
      expect((await b.stat('~')).type).toBe('directory');
      expect(dec((await b.read(join(outside, 'd.txt'))).data)).toBe('data');
      expect(await codeOf(b.read(join(base, 'root')))).toBe('PATH_OUTSIDE_ROOT');
    } finally {
      if (saved === undefined) delete process.env['HOME'];
      else process.env['HOME'] = saved;
    }
  });

  it('checks descriptors through procfs on Linux', () => {
    expect(fsb.descriptorCheck).toBe(process.platform === 'linux' ? 'procfs' : 'realpath');
    expect(backend({}, { procfs: false }).descriptorCheck).toBe('realpath');
  });
});

describe('stat and list', () => {
  it('stats files, directories, symlinks (not followed) and the root', async () => {
    await writeFile(join(root, 'a.txt'), 'hello');
    await chmod(join(root, 'a.txt'), 0o640);
    await mkdir(join(root, 'dir'));
    await symlink('a.txt', join(root, 'link'));
    const file = await fsb.stat('a.txt');
    expect(file).toMatchObject({ path: 'a.txt', name: 'a.txt', type: 'file', size: 5, mode: 0o640 });
    expect(file.mtimeMs).toBeGreaterThan(0);
    expect(await fsb.stat(join(root, 'dir'))).toMatchObject({ name: 'dir', type: 'directory' });
    expect(await fsb.stat('link')).toMatchObject({ type: 'symlink', linkTarget: 'a.txt' });
    expect(await fsb.stat(root)).toMatchObject({ type: 'directory' });
    expect(await fsb.stat('.')).toMatchObject({ type: 'directory' });
    expect(await codeOf(fsb.stat('missing'))).toBe('PATH_NOT_FOUND');
    expect(await codeOf(fsb.stat('a.txt/x'))).toBe('NOT_A_DIRECTORY');
  });

  it('lists a directory sorted by name with each entry lstat-ed', async () => {
    await mkdir(join(root, 'd'));
    await writeFile(join(root, 'd', 'b.txt'), 'bb');
    await writeFile(join(root, 'd', 'a.txt'), 'a');
    await mkdir(join(root, 'd', 'c'));
    await symlink('a.txt', join(root, 'd', '0link'));
    const entries = await fsb.list('d');
    expect(entries.map((e) => [e.name, e.type, e.path])).toEqual([
      ['0link', 'symlink', 'd/0link'],
      ['a.txt', 'file', 'd/a.txt'],
      ['b.txt', 'file', 'd/b.txt'],
      ['c', 'directory', 'd/c'],
    ]);
    expect(entries[0]?.linkTarget).toBe('a.txt');
    expect(entries[2]?.size).toBe(2);
    expect(await codeOf(fsb.list('d/a.txt'))).toBe('NOT_A_DIRECTORY');
    expect(await codeOf(fsb.list('nope'))).toBe('PATH_NOT_FOUND');
  });
});

describe('read', () => {
  it('reads whole files and ranges, reporting size and eof', async () => {
    await writeFile(join(root, 'f.txt'), '0123456789');
    expect(await fsb.read('f.txt').then((r) => [dec(r.data), r.size, r.eof])).toEqual(['0123456789', 10, true]);
    expect(await fsb.read('f.txt', { offset: 2, length: 3 }).then((r) => [dec(r.data), r.eof])).toEqual(['234', false]);
    expect(await fsb.read('f.txt', { offset: 7, length: 3 }).then((r) => [dec(r.data), r.eof])).toEqual(['789', true]);
    expect(await fsb.read('f.txt', { offset: 8, length: 100 }).then((r) => [dec(r.data), r.eof])).toEqual(['89', true]);
    expect(await fsb.read('f.txt', { offset: 50 }).then((r) => [r.data.length, r.size, r.eof])).toEqual([0, 10, true]);
    expect(await codeOf(fsb.read('.'))).toBe('NOT_A_FILE');
    await mkdir(join(root, 'dir'));
    expect(await codeOf(fsb.read('dir'))).toBe('NOT_A_FILE');
    expect(await codeOf(fsb.read('none'))).toBe('PATH_NOT_FOUND');
  });

  it('follows a symlink that stays inside', async () => {
    await mkdir(join(root, 'real'));
    await writeFile(join(root, 'real', 'f'), 'via link');
    await symlink('real', join(root, 'alias'));
    expect(dec((await fsb.read('alias/f')).data)).toBe('via link');
  });

  it('caps a read at maxReadBytes and reads big files in ranges', async () => {
    const small = backend({ maxReadBytes: 1024 });
    const content = randomBytes(300_000);
    await writeFile(join(root, 'big.bin'), content);
    const tooLarge = await rejection(small.read('big.bin', { length: 2048 }));
    expect(tooLarge.code).toBe('TOO_LARGE');
    expect(tooLarge.details['limit']).toBe(1024);
    const first = await small.read('big.bin');
    expect([first.data.length, first.eof, first.size]).toEqual([1024, false, 300_000]);
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (;;) {
      const { data, eof } = await small.read('big.bin', { offset, length: 1000 });
      parts.push(data);
      offset += data.length;
      if (eof) break;
    }
    expect(sha(Buffer.concat(parts))).toBe(sha(content));
  });
});

describe('write', () => {
  it('creates a file with mode 0644 by default and an exact mode when given', async () => {
    expect(await fsb.write('new.txt', enc('hi'))).toEqual({ bytesWritten: 2 });
    expect(await readFile(join(root, 'new.txt'), 'utf8')).toBe('hi');
    expect((await stat(join(root, 'new.txt'))).mode & 0o7777).toBe(0o644);
    await fsb.write('exec.sh', enc('#!/bin/sh'), { mode: 0o750 });
    expect((await stat(join(root, 'exec.sh'))).mode & 0o7777).toBe(0o750);
    await fsb.write('empty', new Uint8Array(0));
    expect((await stat(join(root, 'empty'))).size).toBe(0);
  });

  it('replaces an existing file keeping its mode, or refuses with overwrite: false', async () => {
    await writeFile(join(root, 'f'), 'old');
    await chmod(join(root, 'f'), 0o600);
    await fsb.write('f', enc('new'));
    expect(await readFile(join(root, 'f'), 'utf8')).toBe('new');
    expect((await stat(join(root, 'f'))).mode & 0o7777).toBe(0o600);
    if (process.getuid?.() === 0) {
      await chown(join(root, 'f'), 12345, 23456);
      await fsb.write('f', enc('new'));
      expect(await stat(join(root, 'f'))).toMatchObject({ uid: 12345, gid: 23456 });
    }
    expect(await codeOf(fsb.write('f', enc('newer'), { overwrite: false }))).toBe('PATH_EXISTS');
    expect(await readFile(join(root, 'f'), 'utf8')).toBe('new');
    await fsb.write('g', enc('fresh'), { overwrite: false });
    expect(await readFile(join(root, 'g'), 'utf8')).toBe('fresh');
    expect(await tempFiles(root)).toEqual([]);
  });

  it('creates parent directories only with mkdir', async () => {
    expect(await codeOf(fsb.write('a/b/c.txt', enc('x')))).toBe('PATH_NOT_FOUND');
    await fsb.write('a/b/c.txt', enc('x'), { mkdir: true });
    expect(await readFile(join(root, 'a/b/c.txt'), 'utf8')).toBe('x');
    await fsb.write('a/b/d.txt', enc('y'), { mkdir: true });
    expect(await readFile(join(root, 'a/b/d.txt'), 'utf8')).toBe('y');
  });

  it('writes through a symlink, keeping the link', async () => {
    await writeFile(join(root, 'target.txt'), 'old');
    await symlink('target.txt', join(root, 'link'));
    await fsb.write('link', enc('through'));
    expect((await lstat(join(root, 'link'))).isSymbolicLink()).toBe(true);
    expect(await readFile(join(root, 'target.txt'), 'utf8')).toBe('through');
    await symlink('made.txt', join(root, 'dangling'));
    await fsb.write('dangling', enc('made'));
    expect(await readFile(join(root, 'made.txt'), 'utf8')).toBe('made');
  });

  it('refuses directories, FIFOs and oversized data', async () => {
    await mkdir(join(root, 'dir'));
    expect(await codeOf(fsb.write('dir', enc('x')))).toBe('NOT_A_FILE');
    expect(await codeOf(fsb.write('.', enc('x')))).toBe('NOT_A_FILE');
    execFileSync('mkfifo', [join(root, 'pipe')]);
    expect(await codeOf(fsb.write('pipe', enc('x')))).toBe('NOT_A_FILE');
    expect((await lstat(join(root, 'pipe'))).isFIFO()).toBe(true);
    const small = backend({ maxWriteBytes: 8 });
    const tooLarge = await rejection(small.write('big', new Uint8Array(9)));
    expect([tooLarge.code, tooLarge.details['limit']]).toEqual(['TOO_LARGE', 8]);
    expect(await readdir(root)).toEqual(['dir', 'pipe']);
  });

  it('validates its arguments', async () => {
    const bad = (p: Promise<unknown>) => codeOf(p);
    expect(await bad(fsb.write('x', 'text' as unknown as Uint8Array))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.write('x', enc('x'), { mode: -1 }))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.write('x', enc('x'), { mode: 0o10000 }))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.write('x', enc('x'), { overwrite: 'yes' as unknown as boolean }))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.write(42 as unknown as string, enc('x')))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.stat(''))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.read('x', { offset: -1 }))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.read('x', { length: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.mkdir('x', { recursive: 1 as unknown as boolean }))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.remove('x', null as unknown as undefined))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.writeChunk('', 0, enc('x')))).toBe('INVALID_ARGUMENT');
    expect(await bad(fsb.writeChunk('id', -5, enc('x')))).toBe('INVALID_ARGUMENT');
    expect(await readdir(root)).toEqual([]);
  });
});

describe('mkdir', () => {
  it('creates one directory, or a chain with recursive', async () => {
    await fsb.mkdir('d');
    expect((await stat(join(root, 'd'))).isDirectory()).toBe(true);
    expect(await codeOf(fsb.mkdir('d'))).toBe('PATH_EXISTS');
    await fsb.mkdir('d', { recursive: true });
    expect(await codeOf(fsb.mkdir('x/y/z'))).toBe('PATH_NOT_FOUND');
    await fsb.mkdir('x/y/z', { recursive: true, mode: 0o700 });
    expect((await stat(join(root, 'x/y/z'))).mode & 0o7777).toBe(0o700);
    await writeFile(join(root, 'file'), '');
    expect(await codeOf(fsb.mkdir('file', { recursive: true }))).toBe('PATH_EXISTS');
    expect(await codeOf(fsb.mkdir('file/sub', { recursive: true }))).toBe('NOT_A_DIRECTORY');
  });
});

describe('remove', () => {
  it('removes files and empty directories; trees only with recursive', async () => {
    await writeFile(join(root, 'f'), '');
    await mkdir(join(root, 'empty'));
    await mkdir(join(root, 'tree/a/b'), { recursive: true });
    await writeFile(join(root, 'tree/a/b/leaf'), 'x');
    await writeFile(join(root, 'tree/top'), 'x');
    await fsb.remove('f');
    await fsb.remove('empty');
    expect(await codeOf(fsb.remove('tree'))).toBe('DIRECTORY_NOT_EMPTY');
    expect(await readFile(join(root, 'tree/a/b/leaf'), 'utf8')).toBe('x');
    await fsb.remove('tree', { recursive: true });
    expect(await readdir(root)).toEqual([]);
    expect(await codeOf(fsb.remove('gone'))).toBe('PATH_NOT_FOUND');
    expect(await codeOf(fsb.remove('.', { recursive: true }))).toBe('PERMISSION_DENIED');
    expect(await codeOf(fsb.remove(root, { recursive: true }))).toBe('PERMISSION_DENIED');
  });

  it('removes a symlink itself, never its target, even a link to a directory with recursive', async () => {
    await mkdir(join(root, 'keep'));
    await writeFile(join(root, 'keep', 'precious'), 'p');
    await symlink('keep', join(root, 'dirlink'));
    await fsb.remove('dirlink', { recursive: true });
    await symlink(join(root, 'keep'), join(root, 'dirlink2'));
    await fsb.remove('dirlink2/', { recursive: true });
    await mkdir(join(root, 'tree'));
    await symlink('../keep', join(root, 'tree', 'inner'));
    await fsb.remove('tree', { recursive: true });
    expect(await readdir(root)).toEqual(['keep']);
    expect(await readFile(join(root, 'keep', 'precious'), 'utf8')).toBe('p');
  });
});

describe('move', () => {
  it('renames, refusing to replace unless asked', async () => {
    await writeFile(join(root, 'a'), 'A');
    await writeFile(join(root, 'b'), 'B');
    await mkdir(join(root, 'dir'));
    await fsb.move('a', 'dir/a2');
    expect(await readFile(join(root, 'dir/a2'), 'utf8')).toBe('A');
    expect(await codeOf(fsb.move('dir/a2', 'b'))).toBe('PATH_EXISTS');
    expect(await readFile(join(root, 'b'), 'utf8')).toBe('B');
    await fsb.move('dir/a2', 'b', { overwrite: true });
    expect(await readFile(join(root, 'b'), 'utf8')).toBe('A');
    await fsb.move('dir', 'dir2');
    expect(await codeOf(fsb.move('missing', 'x'))).toBe('PATH_NOT_FOUND');
    expect(await codeOf(fsb.move('b', 'nodir/b'))).toBe('PATH_NOT_FOUND');
    expect(await codeOf(fsb.move('dir2', 'dir2/inside'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(fsb.move('.', 'elsewhere'))).toBe('PERMISSION_DENIED');
    expect(await readdir(root)).toEqual(['b', 'dir2']);
  });

  it('moves a symlink itself', async () => {
    await writeFile(join(root, 't'), 'T');
    await symlink('t', join(root, 'l'));
    await fsb.move('l', 'l2');
    expect(await readlink(join(root, 'l2'))).toBe('t');
  });
});

describe('chunked upload', () => {
  it('assembles chunks and commits atomically', async () => {
    const content = randomBytes(5 * 1024 * 1024 + 17);
    const { uploadId } = await fsb.beginWrite('up/big.bin', { mkdir: true, mode: 0o600 });
    expect(await tempFiles(join(root, 'up'))).toHaveLength(1);
    const chunk = 1024 * 1024;
    for (let offset = 0; offset < content.length; offset += chunk) {
      const { received } = await fsb.writeChunk(uploadId, offset, content.subarray(offset, offset + chunk));
      expect(received).toBe(Math.min(offset + chunk, content.length));
    }
    await expect(stat(join(root, 'up/big.bin'))).rejects.toThrow(); // nothing visible before commit
    expect(await fsb.commitWrite(uploadId)).toEqual({ bytesWritten: content.length });
    expect(sha(await readFile(join(root, 'up/big.bin')))).toBe(sha(content));
    expect((await stat(join(root, 'up/big.bin'))).mode & 0o7777).toBe(0o600);
    expect(await tempFiles(join(root, 'up'))).toEqual([]);
    expect(await fsb.commitWrite(uploadId)).toEqual({ bytesWritten: content.length }); // a retried commit
  });

  it('makes a retried chunk a no-op and refuses gaps', async () => {
    const { uploadId } = await fsb.beginWrite('r.txt');
    expect(await fsb.writeChunk(uploadId, 0, enc('hello '))).toEqual({ received: 6 });
    expect(await fsb.writeChunk(uploadId, 0, enc('hello '))).toEqual({ received: 6 });
    const gap = await rejection(fsb.writeChunk(uploadId, 10, enc('x')));
    expect([gap.code, gap.details['expected']]).toEqual(['INVALID_ARGUMENT', 6]);
    const results = await Promise.all([1, 2, 3].map(() => fsb.writeChunk(uploadId, 6, enc('world'))));
    expect(results.map((r) => r.received)).toEqual([11, 11, 11]);
    await fsb.commitWrite(uploadId);
    expect(await readFile(join(root, 'r.txt'), 'utf8')).toBe('hello world');
  });

  it('aborts, removing the temp file; unknown ids are refused', async () => {
    const { uploadId } = await fsb.beginWrite('a.txt');
    await fsb.writeChunk(uploadId, 0, enc('partial'));
    await fsb.abortWrite(uploadId);
    await fsb.abortWrite(uploadId);
    expect(await readdir(root)).toEqual([]);
    expect(await codeOf(fsb.writeChunk(uploadId, 7, enc('x')))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(fsb.commitWrite(uploadId))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(fsb.commitWrite('no-such-upload'))).toBe('INVALID_ARGUMENT');
  });

  it('expires idle uploads and cleans their temp files', async () => {
    const quick = backend({ uploadTtlMs: 50 });
    const { uploadId } = await quick.beginWrite('slow.txt');
    await quick.writeChunk(uploadId, 0, enc('abc'));
    const deadline = Date.now() + 10_000;
    while ((await readdir(root)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(await readdir(root)).toEqual([]);
    expect(await codeOf(quick.writeChunk(uploadId, 3, enc('d')))).toBe('INVALID_ARGUMENT');
  });

  it('enforces maxFileBytes, maxWriteBytes per chunk and maxUploads', async () => {
    const small = backend({ maxFileBytes: 10, maxWriteBytes: 8, maxUploads: 1 });
    const { uploadId } = await small.beginWrite('f');
    await small.writeChunk(uploadId, 0, new Uint8Array(8));
    const file = await rejection(small.writeChunk(uploadId, 8, new Uint8Array(8)));
    expect([file.code, file.details['limit']]).toEqual(['TOO_LARGE', 10]);
    const chunk = await rejection(small.writeChunk(uploadId, 8, new Uint8Array(9)));
    expect([chunk.code, chunk.details['limit']]).toEqual(['TOO_LARGE', 8]);
    const uploads = await rejection(small.beginWrite('g'));
    expect([uploads.code, uploads.details['limit']]).toEqual(['TOO_LARGE', 1]);
    expect(await small.commitWrite(uploadId)).toEqual({ bytesWritten: 8 });
  });

  it('fails a no-overwrite commit when the file appeared meanwhile, leaving it and no temp file', async () => {
    const { uploadId } = await fsb.beginWrite('race.txt', { overwrite: false });
    await fsb.writeChunk(uploadId, 0, enc('mine'));
    await writeFile(join(root, 'race.txt'), 'theirs');
    expect(await codeOf(fsb.commitWrite(uploadId))).toBe('PATH_EXISTS');
    expect(await readFile(join(root, 'race.txt'), 'utf8')).toBe('theirs');
    expect(await readdir(root)).toEqual(['race.txt']);
    expect(await codeOf(fsb.beginWrite('race.txt', { overwrite: false }))).toBe('PATH_EXISTS');
  });

  it('close() aborts open uploads', async () => {
    const b = backend();
    await b.beginWrite('x');
    await b.close();
    expect(await readdir(root)).toEqual([]);
  });
});

describe('confinement', () => {
  async function outsideUntouched(): Promise<void> {
    expect(await readdir(outside)).toEqual(['secret.txt']);
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('SECRET');
  }

  /** Every operation on `path` (and into it), expecting PATH_OUTSIDE_ROOT. */
  async function allRefused(path: string, b = fsb): Promise<void> {
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['stat', () => b.stat(path)],
      ['list', () => b.list(path)],
      ['read', () => b.read(path)],
      ['write', () => b.write(path, enc('pwned'))],
      ['write into', () => b.write(`${path}/new.txt`, enc('pwned'), { mkdir: true })],
      ['mkdir', () => b.mkdir(`${path}/newdir`, { recursive: true })],
      ['beginWrite', () => b.beginWrite(`${path}/up.txt`)],
      ['remove', () => b.remove(path, { recursive: true })],
      ['move out', () => b.move(path, 'moved', { overwrite: true })],
      ['move in', () => b.move('inside.txt', `${path}/inside.txt`, { overwrite: true })],
    ];
    for (const [what, attempt] of attempts) {
      expect([what, await codeOf(attempt())]).toEqual([what, 'PATH_OUTSIDE_ROOT']);
    }
  }

  beforeEach(async () => {
    await writeFile(join(root, 'inside.txt'), 'in');
  });

  it('refuses .. escapes, absolute paths outside and NUL bytes', async () => {
    await allRefused('../outside');
    await allRefused('../outside/secret.txt');
    await allRefused('sub/../../outside/secret.txt');
    await allRefused(join(outside, 'secret.txt'));
    await allRefused(outside);
    await allRefused('/');
    await allRefused('/etc/passwd');
    expect(await codeOf(fsb.read('inside.txt\0/../../outside/secret.txt'))).toBe('PATH_OUTSIDE_ROOT');
    expect(await codeOf(fsb.write('x\0y', enc('x')))).toBe('PATH_OUTSIDE_ROOT');
    await mkdir(join(root, 'sub'));
    expect(dec((await fsb.read('sub/../inside.txt')).data)).toBe('in'); // .. that stays inside is fine
    await outsideUntouched();
    expect(await readFile(join(root, 'inside.txt'), 'utf8')).toBe('in');
  });

  it('refuses a symlinked file pointing outside', async () => {
    await symlink(join(outside, 'secret.txt'), join(root, 'leak'));
    await symlink('../outside/secret.txt', join(root, 'relleak'));
    await allRefused('leak');
    await allRefused('relleak');
    await outsideUntouched();
    expect(await readlink(join(root, 'leak'))).toBe(join(outside, 'secret.txt'));
  });

  it('refuses a symlinked directory pointing outside, including creating files under it', async () => {
    await symlink(outside, join(root, 'door'));
    await allRefused('door');
    await allRefused('door/secret.txt');
    await allRefused('door/new/deeper');
    expect(await codeOf(fsb.write('door/created.txt', enc('x'), { overwrite: false }))).toBe('PATH_OUTSIDE_ROOT');
    await outsideUntouched();
    expect((await lstat(join(root, 'door'))).isSymbolicLink()).toBe(true);
  });

  it('refuses dangling symlinks that would create a file outside', async () => {
    await symlink(join(outside, 'planted.txt'), join(root, 'dangle'));
    await symlink(join(outside, 'nodir', 'x'), join(root, 'dangle2'));
    expect(await codeOf(fsb.write('dangle', enc('x')))).toBe('PATH_OUTSIDE_ROOT');
    expect(await codeOf(fsb.write('dangle2', enc('x'), { mkdir: true }))).toBe('PATH_OUTSIDE_ROOT');
    expect(await codeOf(fsb.mkdir('dangle2', { recursive: true }))).toBe('PATH_OUTSIDE_ROOT');
    await outsideUntouched();
  });

  it('never names resolved paths in error messages', async () => {
    await symlink(join(outside, 'secret.txt'), join(root, 'leak'));
    await mkdir(join(root, 'realdir'));
    await symlink('realdir', join(root, 'alias'));
    const attempts = [() => fsb.read('leak'), () => fsb.read('alias/missing'), () => fsb.list('alias/missing'), () => fsb.remove('alias/missing')];
    for (const attempt of attempts) {
      const error = await rejection(attempt());
      const shown = JSON.stringify(error.toJSON());
      expect(shown).not.toContain(outside);
      expect(shown).not.toContain('realdir');
      expect(shown).not.toContain('/proc/');
    }
  });

  it('applies the same rules with the dev/ino fallback', async () => {
    const portable = backend({}, { procfs: false });
    await symlink(outside, join(root, 'door'));
    await allRefused('door', portable);
    await allRefused('../outside/secret.txt', portable);
    await portable.write('d/f.txt', enc('ok'), { mkdir: true });
    expect(dec((await portable.read('d/f.txt')).data)).toBe('ok');
    expect((await portable.list('d')).map((e) => e.name)).toEqual(['f.txt']);
    await portable.move('d/f.txt', 'd/g.txt');
    await portable.remove('d', { recursive: true });
    expect(await readdir(root)).toEqual(['door', 'inside.txt']);
    await outsideUntouched();
  });
});
