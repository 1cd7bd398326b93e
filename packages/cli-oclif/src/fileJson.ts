import { resolve } from 'node:path';
import type { FileStat } from '@tether/core';
import { rfc3339 } from './duration.js';

/** A directory entry or file as `file ls` / `file stat` print it. */
export interface EntryJson {
  readonly name: string;
  readonly path: string;
  readonly type: string;
  readonly size: number;
  /** Permission bits in octal, `0644`. */
  readonly mode: string;
  readonly mtime: string | null;
  readonly link_target?: string;
}

export function entryJson(stat: FileStat): EntryJson {
  return {
    name: stat.name,
    path: stat.path,
    type: stat.type,
    size: stat.size,
    mode: (stat.mode & 0o7777).toString(8).padStart(4, '0'),
    mtime: rfc3339(stat.mtimeMs),
    ...(stat.linkTarget !== undefined ? { link_target: stat.linkTarget } : {}),
  };
}

/**
 * A path as the machine should see it: on `local`, relative to the caller's current directory
 * (as a local shell would); elsewhere as given (the daemon resolves it against its home).
 */
export function machinePath(path: string, local: boolean): string {
  if (!local || path.startsWith('~')) return path;
  return resolve(path);
}

/** `0644`, `644`, `0o644` → 0o644. */
export function parseMode(text: string): number | undefined {
  const match = /^(?:0o?)?([0-7]{3,4})$/.exec(text.trim());
  return match ? parseInt(match[1]!, 8) : undefined;
}
