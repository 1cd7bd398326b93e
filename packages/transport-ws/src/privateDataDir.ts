import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TetherError } from '@tether/core';

/** What `preparePrivateDataDir` changed, for the daemon's log. */
export interface PrivateDataDirReport {
  /** The data dir's mode before, when it had to be tightened (e.g. 0o755). */
  readonly tightenedFrom?: number;
  /** Entries below it whose group/other bits were removed. */
  readonly tightenedEntries: number;
}

/**
 * Makes the daemon's data dir private before anything is stored in it: created with mode 0700
 * when missing; an existing one open to group or others (0755…) is tightened to 0700, and so
 * are the entries a daemon keeps in it (`events/` and its LevelDB files, the token), which an
 * older daemon may have left readable. A directory this user does not own, or cannot chmod, is
 * refused with `PERMISSION_DENIED` and the command that fixes it: the store holds the output of
 * every command, which other users of the machine must not read.
 */
export async function preparePrivateDataDir(dir: string, subdirs: readonly string[] = ['events']): Promise<PrivateDataDirReport> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await stat(dir);
  if (!info.isDirectory()) throw new TetherError('INVALID_ARGUMENT', `the data dir ${dir} is not a directory`, { dataDir: dir });
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new TetherError(
      'PERMISSION_DENIED',
      `the data dir ${dir} belongs to uid ${info.uid}, not to this user (uid ${uid}), and the daemon keeps every command's output there: ` +
        `use a data dir of your own (--data-dir), or run sudo chown -R ${uid} ${dir} && chmod 700 ${dir}`,
      { dataDir: dir, owner: info.uid },
    );
  }
  let tightenedFrom: number | undefined;
  if ((info.mode & 0o077) !== 0) {
    tightenedFrom = info.mode & 0o777;
    await tighten(dir, 0o700);
  }
  let tightenedEntries = 0;
  for (const sub of subdirs) tightenedEntries += await tightenTree(join(dir, sub));
  return tightenedFrom === undefined ? { tightenedEntries } : { tightenedFrom, tightenedEntries };
}

async function tighten(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new TetherError(
      'PERMISSION_DENIED',
      `cannot make ${path} private (${code}), and others could read what the daemon stores there; run chmod -R go-rwx ${path}`,
      { path },
      { cause },
    );
  }
}

/** Removes group/other bits below `root` (files and directories; symlinks are left alone). */
async function tightenTree(root: string): Promise<number> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let changed = 0;
  for (const path of [root, ...entries.map((name) => join(root, name))]) {
    const info = await lstat(path).catch(() => undefined);
    if (!info || info.isSymbolicLink() || (info.mode & 0o077) === 0) continue;
    await tighten(path, info.mode & 0o700);
    changed++;
  }
  return changed;
}
