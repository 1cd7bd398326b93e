import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { TetherError } from '@tether/core';

/** LevelDB's words (classic-level keeps no errno) for a write that failed for lack of space. */
const NO_SPACE = /no space left on device|disk quota exceeded|ENOSPC|EDQUOT/i;
const ERRNO = /\b(E[A-Z]{2,})\b|(read-only file system|input\/output error|permission denied)/i;

/**
 * The TetherError for a failed LevelDB write: `DISK_FULL` when the disk or quota is full, else
 * `STORE_WRITE_FAILED`; the library's error is the `cause`.
 */
export function writeFailure(dir: string, error: unknown): TetherError {
  const text = messageChain(error);
  if (NO_SPACE.test(text)) {
    return new TetherError(
      'DISK_FULL',
      `No space left for the event store at ${dir}: appends are refused (running commands keep running, their output held) until space is freed under ${dir}; reads still work`,
      { dir },
      { cause: error },
    );
  }
  const errno = ERRNO.exec(text)?.[0];
  return new TetherError(
    'STORE_WRITE_FAILED',
    `Writing to the event store at ${dir} failed (${firstLine(text)}): appends are refused until a retry succeeds; reads still work`,
    { dir, ...(errno ? { errno } : {}) },
    { cause: error },
  );
}

/**
 * Whether the filesystem holding `dir` has room to reopen LevelDB: the open replays each log
 * file into a table of about its size, then writes a new manifest and an empty log.
 */
export async function hasRoomToReopen(dir: string, marginBytes = 1024 * 1024): Promise<boolean> {
  const [fs, names] = await Promise.all([statfs(dir), readdir(dir)]);
  let logBytes = 0;
  for (const name of names) {
    if (!name.endsWith('.log')) continue;
    logBytes += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
  }
  return fs.bavail * fs.bsize >= logBytes * 1.1 + marginBytes;
}

function messageChain(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) parts.push(e.message);
  return parts.length > 0 ? parts.join(': ') : String(error);
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.slice(0, 300);
}
