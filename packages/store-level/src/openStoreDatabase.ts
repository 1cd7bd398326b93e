import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TetherError } from '@tether/core';
import { ClassicLevel } from 'classic-level';
import { FORMAT_KEY } from './keys.js';

export type StoreDatabase = ClassicLevel<Uint8Array, Uint8Array>;

/** The name of the marker file a tether store keeps beside LevelDB's files. */
export const MARKER_FILE = 'TETHER-STORE';
/** The `format` of the marker file and key. */
export const STORE_FORMAT = 'tether-event-store';
/** The store format this package writes; it refuses stores of a newer one. */
export const FORMAT_VERSION = 1;

const MARKER = JSON.stringify({ format: STORE_FORMAT, version: FORMAT_VERSION });
/** What LevelDB leaves behind when creating a database is interrupted before CURRENT exists. */
const CREATION_LEFTOVERS = new Set([MARKER_FILE, 'LOCK', 'LOG', 'LOG.old']);

/**
 * LevelDB tuning. A 32 MiB write buffer (default 4 MiB) makes fewer, larger level-0 files: the
 * state snapshot rewritten with every batch makes each of them overlap the next, so compaction
 * has to merge them, and doing that less often keeps ingest close to raw LevelDB speed.
 */
export const LEVEL_OPTIONS = { writeBufferSize: 32 * 1024 * 1024 } as const;

const moveAside = (dir: string) =>
  `Nothing in the directory was changed. To start afresh, stop tether and move the directory aside (mv ${dir} ${dir}.broken); keep it if you want to inspect or recover it.`;

function corrupt(dir: string, what: string, cause?: unknown): TetherError {
  return new TetherError('STORE_CORRUPT', `The event store at ${dir} cannot be opened: ${what}. ${moveAside(dir)}`, { dir }, { cause });
}

/**
 * Opens (or creates) the LevelDB database of a tether store at `dir`.
 *
 * A missing or empty directory becomes a new store. Anything else must carry tether's marker
 * file and marker key: a directory of other files, or a LevelDB that is not a tether store, is
 * refused with `STORE_CORRUPT` before LevelDB touches it. LevelDB is opened with
 * `createIfMissing` only for a new store and is never repaired; when its open fails, the info
 * log it rotates on the way is put back, so a refused directory is left byte-for-byte as it was.
 */
export async function openStoreDatabase(location: string, writeBufferSize: number = LEVEL_OPTIONS.writeBufferSize): Promise<StoreDatabase> {
  const dir = resolve(location);
  const entries = await listDirectory(dir);
  if (entries === undefined || entries.length === 0) return create(dir, writeBufferSize);

  const marker = await readFile(join(dir, MARKER_FILE), 'utf8').catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw corrupt(dir, `its marker file ${MARKER_FILE} cannot be read`, error);
  });
  if (marker === undefined) {
    const what = entries.includes('CURRENT')
      ? `it holds a LevelDB database that is not a tether store (no ${MARKER_FILE} file)`
      : `the directory is not empty and is not a tether store (no ${MARKER_FILE} file)`;
    throw corrupt(dir, what);
  }
  checkMarker(dir, marker, `the ${MARKER_FILE} file`);
  if (!entries.includes('CURRENT')) {
    if (entries.every((name) => CREATION_LEFTOVERS.has(name))) return create(dir, writeBufferSize);
    throw corrupt(dir, "LevelDB's CURRENT file is missing");
  }

  const infoLog = await saveInfoLog(dir);
  // abstract-level starts opening on the next tick after construction, with these options.
  const db: StoreDatabase = new ClassicLevel(dir, { writeBufferSize, keyEncoding: 'view', valueEncoding: 'view', createIfMissing: false });
  try {
    await db.open({ createIfMissing: false, errorIfExists: false });
  } catch (error) {
    await restoreInfoLog(dir, infoLog).catch(() => undefined);
    throw translateOpenError(dir, error);
  }
  try {
    const value = await db.get(FORMAT_KEY);
    if (value === undefined) throw corrupt(dir, 'the database has no tether format marker');
    checkMarker(dir, Buffer.from(value).toString('utf8'), 'the format marker');
    return db;
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error instanceof TetherError ? error : corrupt(dir, 'the format marker cannot be read', error);
  }
}

async function listDirectory(dir: string): Promise<string[] | undefined> {
  try {
    return await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') throw corrupt(dir, 'it is not a directory', error);
    if (code === 'EACCES' || code === 'EPERM') {
      throw new TetherError('PERMISSION_DENIED', `The event store at ${dir} cannot be read: permission denied`, { dir }, { cause: error });
    }
    throw new TetherError('INTERNAL', `The event store at ${dir} cannot be read: ${(error as Error).message}`, { dir }, { cause: error });
  }
}

function checkMarker(dir: string, text: string, where: string): void {
  let marker: { format?: unknown; version?: unknown };
  try {
    marker = JSON.parse(text) as typeof marker;
  } catch (error) {
    throw corrupt(dir, `${where} is damaged`, error);
  }
  if (marker?.format !== STORE_FORMAT || typeof marker.version !== 'number') throw corrupt(dir, `${where} is not tether's`);
  if (marker.version > FORMAT_VERSION) {
    throw corrupt(dir, `it was written by a newer tether (store format ${marker.version}; this one reads up to ${FORMAT_VERSION}); upgrade tether`);
  }
  if (marker.version !== FORMAT_VERSION) throw corrupt(dir, `its store format ${marker.version} is unknown`);
}

async function create(dir: string, writeBufferSize: number): Promise<StoreDatabase> {
  try {
    await mkdir(dir, { recursive: true });
    // The marker file goes first: a creation cut short leaves a directory that is recognised as
    // an interrupted creation rather than as someone else's files.
    const temp = join(dir, `${MARKER_FILE}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(temp, MARKER);
    await fsync(temp);
    await rename(temp, join(dir, MARKER_FILE));
    await fsync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new TetherError(
      code === 'EACCES' || code === 'EPERM' ? 'PERMISSION_DENIED' : 'INTERNAL',
      `The event store at ${dir} cannot be created: ${(error as Error).message}`,
      { dir },
      { cause: error },
    );
  }
  const db: StoreDatabase = new ClassicLevel(dir, { writeBufferSize, keyEncoding: 'view', valueEncoding: 'view' });
  try {
    await db.open({ createIfMissing: true });
  } catch (error) {
    throw translateOpenError(dir, error);
  }
  try {
    await db.put(FORMAT_KEY, Buffer.from(MARKER), { sync: true });
  } catch (error) {
    await db.close().catch(() => undefined);
    throw new TetherError('INTERNAL', `The event store at ${dir} cannot be created: ${(error as Error).message}`, { dir }, { cause: error });
  }
  return db;
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function causeChain(error: unknown): Array<{ code?: unknown; message?: unknown }> {
  const chain: Array<{ code?: unknown; message?: unknown }> = [];
  for (let e = error; typeof e === 'object' && e !== null && chain.length < 10; e = (e as { cause?: unknown }).cause) {
    chain.push(e as { code?: unknown; message?: unknown });
  }
  return chain;
}

/** Turns classic-level's open failure (LEVEL_DATABASE_NOT_OPEN with a cause) into a tether error. */
export function translateOpenError(dir: string, error: unknown): TetherError {
  const chain = causeChain(error);
  const locked = chain.find((e) => e.code === 'LEVEL_LOCKED');
  if (locked) {
    const here = String(locked.message).includes('held by process');
    const by = here ? 'is already open in this process' : 'is already in use by another process';
    return new TetherError(
      'STORE_LOCKED',
      `The event store at ${dir} ${by} (LevelDB holds the lock on ${join(dir, 'LOCK')}). Stop the other tether daemon or use another directory.`,
      { dir },
      { cause: error },
    );
  }
  const detail = chain.at(-1)?.message;
  const reason = typeof detail === 'string' ? detail : 'LevelDB refused to open it';
  if (/permission denied/i.test(reason)) {
    return new TetherError('PERMISSION_DENIED', `The event store at ${dir} cannot be opened: ${reason}`, { dir }, { cause: error });
  }
  // Opening writes (the log is replayed into a table, a new manifest and log are made): a full
  // disk is not damage, and the advice to move the directory aside would be wrong.
  if (/no space left on device|disk quota exceeded/i.test(reason)) {
    return new TetherError(
      'DISK_FULL',
      `The event store at ${dir} cannot be opened: no space left on its disk (${reason}). Nothing in it was changed; free space under ${dir} and start again.`,
      { dir },
      { cause: error },
    );
  }
  if (/^IO error: .*(read-only file system|input\/output error)/i.test(reason)) {
    return new TetherError('STORE_WRITE_FAILED', `The event store at ${dir} cannot be opened: ${reason}`, { dir }, { cause: error });
  }
  return corrupt(dir, `LevelDB reports "${reason}"`, error);
}

interface InfoLogSnapshot {
  readonly hadLog: boolean;
  readonly logOld: Buffer | undefined;
  readonly hadLock: boolean;
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

// LevelDB renames LOG to LOG.old and starts a new LOG before it even takes the lock, so a
// failed open (locked, corrupt) would otherwise rotate the info log of a directory it refused
// (and of the process that holds the lock).
async function saveInfoLog(dir: string): Promise<InfoLogSnapshot> {
  const logOld = await readFile(join(dir, 'LOG.old')).catch(() => undefined);
  return { hadLog: await exists(join(dir, 'LOG')), logOld, hadLock: await exists(join(dir, 'LOCK')) };
}

async function restoreInfoLog(dir: string, saved: InfoLogSnapshot): Promise<void> {
  if (saved.hadLog && (await exists(join(dir, 'LOG.old')))) {
    // Renaming (not copying) keeps the original LOG's inode, which a lock holder still writes to.
    await rename(join(dir, 'LOG.old'), join(dir, 'LOG'));
    if (saved.logOld !== undefined) await writeFile(join(dir, 'LOG.old'), saved.logOld);
  } else if (!saved.hadLog) {
    await rm(join(dir, 'LOG'), { force: true });
  }
  if (!saved.hadLock) await rm(join(dir, 'LOCK'), { force: true });
}
