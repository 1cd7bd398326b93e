import { Flags } from '@oclif/core';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TetherCommand, machineFlag } from './baseCommand.js';
import { CliError } from './cliError.js';
import { machinePath } from './fileJson.js';
import { ProgressBar } from './progressBar.js';
import { loadRuntime } from './runtimeLoader.js';

/** The flags of `sync push` and `sync pull`. */
export const syncFlags = {
  machine: machineFlag,
  src: Flags.string({ description: 'what to copy: a directory (its contents are mirrored) or a file', required: true }),
  dst: Flags.string({ description: 'where: a directory (created if missing), or a file path', required: true }),
  delete: Flags.boolean({ description: 'remove what the destination has and the source does not (excluded entries stay)', default: false }),
  exclude: Flags.string({ description: 'leave entries matching this pattern alone on both sides (gitignore-like: name, dir/, *.log, /top-level, **/x); repeatable', multiple: true }),
  compare: Flags.string({
    description: 'when a file of equal size and mode is copied: content (compare the bytes), size (never, like rsync --size-only), always',
    options: ['content', 'size', 'always'],
    default: 'content',
  }),
};

type SyncFlags = { config?: string; machine: string; src: string; dst: string; delete: boolean; exclude?: string[]; compare: string };

/**
 * `sync push` (this machine → `--machine`) and `sync pull` (`--machine` → this machine), both
 * core's `syncDirectory` between a `LocalFileSystemBackend` rooted at the local side and the
 * machine's filesystem API: per file, atomic, no rsync needed on either side.
 */
export abstract class SyncCommand extends TetherCommand {
  protected async sync(direction: 'push' | 'pull', flags: SyncFlags): Promise<void> {
    this.useConfig(flags.config);
    const { syncDirectory, loadLocalFileSystem } = await loadRuntime();
    const LocalFileSystemBackend = await loadLocalFileSystem();
    const localPath = resolve(direction === 'push' ? flags.src : flags.dst);
    const root = await localRoot(localPath, direction === 'push');
    // The user named the local path: the backend's confinement is to that side only, and without a size cap.
    const local = new LocalFileSystemBackend({ roots: [root], maxFileBytes: Number.MAX_SAFE_INTEGER });
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const remote = { fs: machine.fs, path: machinePath(direction === 'push' ? flags.dst : flags.src, isLocal) };
    const here = { fs: local, path: localPath };
    const bar = process.stderr.isTTY ? new ProgressBar(process.stderr, `${direction} ${flags.machine}`) : undefined;
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      const result = await syncDirectory(direction === 'push' ? here : remote, direction === 'push' ? remote : here, {
        delete: flags.delete,
        exclude: flags.exclude ?? [],
        compare: flags.compare as 'content' | 'size' | 'always',
        onProgress: bar ? (progress) => bar.update(progress) : undefined,
        signal: abort.signal,
      });
      bar?.done();
      this.emit({ ok: result.ok, files: result.files, bytes: result.bytes, deleted: result.deleted, skipped: result.skipped });
      if (!result.ok) {
        const why = result.skipped.filter((s) => s.reason !== 'symlink' && s.reason !== 'special');
        throw new CliError('SYNC_INCOMPLETE', `${why.length} entr${why.length === 1 ? 'y was' : 'ies were'} not synced: ${why.slice(0, 3).map((s) => `${s.path} (${s.reason})`).join(', ')}${why.length > 3 ? ', …' : ''}`, {
          hint: 'see "skipped" on stdout; a file that changed or vanished while it was read is synced by running the same command again',
        });
      }
    } finally {
      process.off('SIGINT', onSigint);
    }
  }
}

/** The local backend's root: the local path when it is a directory, else its nearest existing ancestor. */
export async function localRoot(path: string, mustExist: boolean): Promise<string> {
  const found = await stat(path).catch(() => undefined);
  if (found?.isDirectory()) return path;
  if (!found && mustExist) throw new CliError('PATH_NOT_FOUND', `--src: ${path} does not exist`, { hint: 'give an existing local file or directory' });
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((await stat(dir).catch(() => undefined))?.isDirectory()) return dir;
    if (dir === dirname(dir)) return dir;
  }
}
