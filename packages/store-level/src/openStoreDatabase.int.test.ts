import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTetherError, type ExecutionEvent } from '@tether/core';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LevelEventStore } from './levelEventStore.js';
import { MARKER_FILE } from './openStoreDatabase.js';

const holdStore = fileURLToPath(new URL('../test/fixtures/holdStore.mjs', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const requested: ExecutionEvent = {
  type: 'ExecutionRequested',
  data: { spec: { command: 'true', envMode: 'merge', stdin: false, killGraceMs: 3000 } },
};

const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tether-level-open-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Every file of a directory (recursively) with a hash of its content. */
async function fingerprint(dir: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    if ((await stat(path)).isFile()) result[name] = createHash('sha256').update(await readFile(path)).digest('hex');
  }
  return result;
}

async function openError(dir: string): Promise<Error & { code?: string }> {
  const error = await LevelEventStore.open(dir).then(
    async (store) => {
      await store.close();
      return new Error('the store opened');
    },
    (e: unknown) => e as Error,
  );
  return error;
}

/** Reads a child's stdout line by line; `next()` resolves with the next line. */
function lines(child: ChildProcessWithoutNullStreams): { next(): Promise<string> } {
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else queue.push(line);
    }
  });
  return {
    next: () =>
      new Promise((resolve, reject) => {
        const line = queue.shift();
        if (line !== undefined) return resolve(line);
        waiting.push(resolve);
        child.once('exit', (code) => reject(new Error(`child exited (${code}) before printing a line: ${stderr}`)));
      }),
  };
}

describe('opening a store', () => {
  beforeAll(() => {
    if (!existsSync(built)) throw new Error('build @tether/store-level first (npx tsc -b packages/store-level): the child process uses dist/');
  });

  it('refuses a directory another process holds with STORE_LOCKED, leaving that process undisturbed', async () => {
    const dir = await freshDir();
    const child = spawn(process.execPath, [holdStore, dir]);
    children.push(child);
    const output = lines(child);
    expect(await output.next()).toBe('ready');
    const logInode = (await stat(join(dir, 'LOG'))).ino;

    const error = await openError(dir);
    expect(isTetherError(error, 'STORE_LOCKED'), String(error)).toBe(true);
    expect(error.message).toContain(`The event store at ${dir} is already in use by another process`);
    const causes: unknown[] = [];
    for (let e: unknown = error; e instanceof Error; e = e.cause) causes.push((e as { code?: unknown }).code);
    expect(causes).toContain('LEVEL_LOCKED');
    // LevelDB rotates its info log even when the lock is refused; the store puts it back.
    expect((await stat(join(dir, 'LOG'))).ino).toBe(logInode);

    child.stdin.write('still here\n');
    expect(await output.next()).toBe('appended 1');
    child.stdin.end();
    await new Promise((resolve) => child.once('exit', resolve));
    expect(child.exitCode).toBe(0);

    const store = await LevelEventStore.open(dir);
    const events = await store.read('held');
    await store.close();
    expect(events.map((e) => (e.type === 'OutputProduced' ? new TextDecoder().decode(e.data.data) : e.type))).toEqual(['still here']);
  });

  it('refuses a second open in the same process with STORE_LOCKED', async () => {
    const dir = await freshDir();
    const store = await LevelEventStore.open(dir);
    const error = await openError(dir);
    await store.close();
    expect(isTetherError(error, 'STORE_LOCKED')).toBe(true);
    expect(error.message).toContain('already open in this process');
  });

  it('creates a store in a missing or empty directory, or after an interrupted creation', async () => {
    const base = await freshDir();
    const nested = join(base, 'a', 'b');
    let store = await LevelEventStore.open(nested);
    await store.append('x', [requested]);
    await store.close();
    store = await LevelEventStore.open(nested);
    expect(await store.durableSeq('x')).toBe(1);
    await store.close();

    const empty = join(base, 'empty');
    await mkdir(empty);
    store = await LevelEventStore.open(empty);
    await store.close();

    const interrupted = join(base, 'interrupted');
    await mkdir(interrupted);
    await writeFile(join(interrupted, MARKER_FILE), JSON.stringify({ format: 'tether-event-store', version: 1 }));
    store = await LevelEventStore.open(interrupted);
    await store.close();
  });

  describe('refuses a damaged or foreign directory with STORE_CORRUPT and leaves it untouched', () => {
    async function tetherStore(): Promise<string> {
      const dir = await freshDir();
      const store = await LevelEventStore.open(dir);
      for (let i = 0; i < 20; i++) await store.append(`s${i}`, [requested]);
      await store.close();
      return dir;
    }

    async function expectRefused(dir: string, what: RegExp): Promise<void> {
      const before = await fingerprint(dir);
      const error = await openError(dir);
      expect(isTetherError(error, 'STORE_CORRUPT'), String(error)).toBe(true);
      expect(error.message).toContain(`The event store at ${dir} cannot be opened`);
      expect(error.message).toMatch(what);
      expect(error.message).toContain('Nothing in the directory was changed');
      expect(error.message).toContain('move the directory aside');
      expect(await fingerprint(dir)).toEqual(before);
    }

    it('garbage in CURRENT', async () => {
      const dir = await tetherStore();
      await writeFile(join(dir, 'CURRENT'), 'this is not a manifest name');
      await expectRefused(dir, /CURRENT/);
    });

    it('a damaged MANIFEST', async () => {
      const dir = await tetherStore();
      const manifest = (await readdir(dir)).find((name) => name.startsWith('MANIFEST-'))!;
      const bytes = await readFile(join(dir, manifest));
      bytes.fill(0x5a, 12, 24);
      await writeFile(join(dir, manifest), bytes);
      await expectRefused(dir, /checksum mismatch|corrupt/i);
    });

    it('a missing MANIFEST', async () => {
      const dir = await tetherStore();
      const manifest = (await readdir(dir)).find((name) => name.startsWith('MANIFEST-'))!;
      await rm(join(dir, manifest));
      await expectRefused(dir, /MANIFEST/);
    });

    it('a LevelDB database that is not a tether store', async () => {
      const dir = await freshDir();
      const db = new ClassicLevel(dir);
      await db.open();
      await db.put('someone', 'else');
      await db.close();
      await expectRefused(dir, /LevelDB database that is not a tether store/);
    });

    it('a directory of other files', async () => {
      const dir = await freshDir();
      await writeFile(join(dir, 'notes.txt'), 'mine');
      await expectRefused(dir, /not a tether store/);
    });

    it('a store written by a newer format', async () => {
      const dir = await tetherStore();
      await writeFile(join(dir, MARKER_FILE), JSON.stringify({ format: 'tether-event-store', version: 99 }));
      await expectRefused(dir, /newer tether/);
    });
  });
});
