import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile, lstat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTetherError, type ErrorCode } from '@tether/core';
import { LocalFileSystemBackend } from './localFileSystemBackend.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let base: string;
let root: string;
let outside: string;
const cleanups: Array<() => unknown> = [];

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'tether-fs-int-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(base, { recursive: true, force: true });
});

function backend(config: ConstructorParameters<typeof LocalFileSystemBackend>[0] = {}): LocalFileSystemBackend {
  const created = new LocalFileSystemBackend({ roots: [root], ...config });
  cleanups.push(() => created.close());
  return created;
}

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (isTetherError(error)) return error.code;
    throw error;
  }
}

/** Fails (instead of hanging the run) if `promise` has not settled in 10 s; a guard, not a timing assertion. */
function settlesPromptly<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the operation blocked')), 10_000);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/** Every file under `dir` with its content hash, for before/after comparison. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string): Promise<void> {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) {
        out[`${relative(dir, p)}/`] = 'dir';
        await walk(p);
      } else {
        out[relative(dir, p)] = sha(await readFile(p));
      }
    }
  }
  await walk(dir);
  return out;
}

// Swaps root/x between a real directory (holding an innocent file) and a symlink to `outside`,
// as fast as it can, until killed. Stray entries the backend creates at root/x while it is
// absent are cleared so the swapping never stops.
const SWAPPER = `
const fs = require('node:fs');
const [root, outside] = process.argv.slice(-2);
const x = root + '/x', real = root + '/.real', link = root + '/.link';
fs.mkdirSync(real);
fs.writeFileSync(real + '/f', 'innocent');
fs.writeFileSync(real + '/victim.txt', 'inside victim');
fs.symlinkSync(outside, link);
function swapIn(from) {
  for (;;) {
    try { fs.renameSync(from, x); return; } catch { try { fs.rmSync(x, { recursive: true, force: true }); } catch {} }
  }
}
process.stdout.write('ready\\n');
for (;;) {
  swapIn(real); fs.renameSync(x, real);
  swapIn(link); fs.renameSync(x, link);
}
`;

async function startSwapper(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', SWAPPER, root, outside], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`swapper exited early (${code})`)));
  });
  return child;
}

describe('symlink-swap race', () => {
  it('never reads, lists or writes outside while root/x flips between a directory and a link out', async () => {
    await writeFile(join(outside, 'secret.txt'), 'SECRET');
    await writeFile(join(outside, 'f'), 'SECRET f');
    await writeFile(join(outside, 'victim.txt'), 'outside victim');
    await mkdir(join(outside, 'tree'));
    await writeFile(join(outside, 'tree', 'keep.txt'), 'keep');
    const before = await snapshot(outside);
    const fsb = backend();
    const swapper = await startSwapper();

    const outcomes = new Map<string, number>();
    const note = (what: string, code: string): void => void outcomes.set(`${what}:${code}`, (outcomes.get(`${what}:${code}`) ?? 0) + 1);
    const allowed = new Set(['ok', 'PATH_OUTSIDE_ROOT', 'PATH_NOT_FOUND', 'NOT_A_DIRECTORY', 'PATH_EXISTS', 'DIRECTORY_NOT_EMPTY']);
    const leaks: string[] = [];
    const attempt = async (what: string, run: () => Promise<unknown>, check?: (value: unknown) => void): Promise<void> => {
      try {
        const value = await run();
        check?.(value);
        note(what, 'ok');
      } catch (error) {
        if (!isTetherError(error)) throw error;
        if (!allowed.has(error.code)) leaks.push(`${what}: unexpected ${error.code} ${error.message}`);
        note(what, error.code);
      }
    };
    const upload = async (): Promise<void> => {
      const { uploadId } = await fsb.beginWrite('x/up.txt');
      await fsb.writeChunk(uploadId, 0, enc('uploaded'));
      await fsb.commitWrite(uploadId);
    };

    for (let i = 0; i < 2000; i++) {
      await Promise.all([
        attempt('read', () => fsb.read('x/f'), (r) => {
          const text = dec((r as { data: Uint8Array }).data);
          if (text !== 'innocent') leaks.push(`read returned ${text}`);
        }),
        attempt('read secret', () => fsb.read('x/secret.txt'), () => leaks.push('read x/secret.txt succeeded')),
        attempt('stat secret', () => fsb.stat('x/secret.txt'), () => leaks.push('stat x/secret.txt succeeded')),
        attempt('list', () => fsb.list('x'), (entries) => {
          if ((entries as Array<{ name: string }>).some((e) => e.name === 'secret.txt')) leaks.push('list showed secret.txt');
        }),
        attempt('write', () => fsb.write('x/w.txt', enc('w'))),
        attempt('write mkdir', () => fsb.write('x/sub/deep.txt', enc('d'), { mkdir: true })),
        attempt('mkdir', () => fsb.mkdir('x/m/n', { recursive: true })),
        attempt('remove', () => fsb.remove('x/victim.txt')),
        attempt('write tree', () => fsb.write('x/tree/a/b.txt', enc('t'), { mkdir: true })),
        attempt('remove tree', () => fsb.remove('x/tree', { recursive: true })),
        attempt('move', () => fsb.move('x/w.txt', 'x/w2.txt', { overwrite: true })),
        attempt('upload', upload),
      ]);
    }

    expect([swapper.exitCode, swapper.signalCode]).toEqual([null, null]); // it swapped throughout
    expect(leaks).toEqual([]);
    expect(await snapshot(outside)).toEqual(before);
    // The race really happened: some operations went through the directory, some met the link.
    expect(outcomes.get('read:ok') ?? 0).toBeGreaterThan(0);
    expect(outcomes.get('read:PATH_OUTSIDE_ROOT') ?? 0).toBeGreaterThan(0);
    expect(outcomes.get('write:ok') ?? 0).toBeGreaterThan(0);
  }, 300_000); // bounded by its 2000 rounds; on a loaded 2-core machine they take over a minute
});

describe('atomic write', () => {
  it('never exposes a partial file to a concurrent reader', async () => {
    const fsb = backend();
    const a = randomBytes(3 * 1024 * 1024);
    const b = randomBytes(2 * 1024 * 1024 + 123);
    const valid = new Set([sha(a), sha(b)]);
    await fsb.write('atomic.bin', a);
    let writing = true;
    const seen = { backend: 0, raw: 0 };
    const bad: string[] = [];
    const reader = (async () => {
      while (writing) {
        const viaBackend = await fsb.read('atomic.bin');
        if (!viaBackend.eof || !valid.has(sha(viaBackend.data))) bad.push(`backend read ${viaBackend.data.length} bytes`);
        seen.backend++;
        const raw = await readFile(join(root, 'atomic.bin'));
        if (!valid.has(sha(raw))) bad.push(`raw read ${raw.length} bytes`);
        seen.raw++;
      }
    })();
    for (let i = 0; i < 40; i++) await fsb.write('atomic.bin', i % 2 === 0 ? b : a);
    writing = false;
    await reader;
    expect(bad).toEqual([]);
    expect(seen.backend).toBeGreaterThan(0);
    expect((await readdir(root)).sort()).toEqual(['atomic.bin']);
  });
});

describe('special files', () => {
  it('refuses a FIFO with no writer at once instead of blocking', async () => {
    const fsb = backend();
    execFileSync('mkfifo', [join(root, 'pipe')]);
    await symlink('pipe', join(root, 'pipelink'));
    expect(await settlesPromptly(codeOf(fsb.read('pipe')))).toBe('NOT_A_FILE');
    expect(await settlesPromptly(codeOf(fsb.read('pipelink')))).toBe('NOT_A_FILE');
    expect((await fsb.stat('pipe')).type).toBe('fifo');
    expect((await fsb.list('.')).map((e) => [e.name, e.type])).toEqual([
      ['pipe', 'fifo'],
      ['pipelink', 'symlink'],
    ]);
  });

  it('refuses a socket', async () => {
    const fsb = backend();
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(join(root, 'sock'), resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    expect(await settlesPromptly(codeOf(fsb.read('sock')))).toBe('NOT_A_FILE');
    expect((await fsb.stat('sock')).type).toBe('socket');
  });

  it('refuses a link to /dev/zero as outside, and devices themselves as not files', async () => {
    await symlink('/dev/zero', join(root, 'zero'));
    expect(await settlesPromptly(codeOf(backend().read('zero')))).toBe('PATH_OUTSIDE_ROOT');
    const dev = new LocalFileSystemBackend({ roots: ['/dev'] });
    cleanups.push(() => dev.close());
    expect(await settlesPromptly(codeOf(dev.read('/dev/zero')))).toBe('NOT_A_FILE');
    expect(await settlesPromptly(codeOf(dev.read('zero', { length: 10 })))).toBe('NOT_A_FILE');
    expect(await settlesPromptly(codeOf(dev.read('/dev/null')))).toBe('NOT_A_FILE');
    expect((await dev.stat('/dev/zero')).type).toBe('char-device');
    expect((await lstat('/dev/zero')).isCharacterDevice()).toBe(true);
  });
});
