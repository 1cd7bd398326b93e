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
  src: Flags.string({ description: "what to copy, with rsync's rule: DIR/ copies the directory's contents into --dst, DIR copies the directory itself (into --dst/DIR); or a file", required: true }),
  dst: Flags.string({ description: 'where: a directory (created if missing), or a file path', required: true }),
  delete: Flags.boolean({
    description: 'remove what the destination has and the source does not (excluded entries stay); refused when the destination is not a mirror of the source (shares no entry with it) unless --force-delete',
    default: false,
  }),
  'force-delete': Flags.boolean({ description: 'with --delete: delete even from a destination that shares no entry with the source', default: false, dependsOn: ['delete'] }),
  'dry-run': Flags.boolean({ description: 'change nothing; print what would be copied (would_copy) and removed (would_delete)', default: false }),
  exclude: Flags.string({ description: 'leave entries matching this pattern alone on both sides (gitignore-like: name, dir/, *.log, /top-level, **/x); repeatable', multiple: true }),
  compare: Flags.string({
    description: 'when a file of equal size and mode is copied: content (compare the bytes), size (never, like rsync --size-only), always',
    options: ['content', 'size', 'always'],
    default: 'content',
  }),
};

type SyncFlags = {
  config?: string;
  machine: string;
  src: string;
  dst: string;
  delete: boolean;
  'force-delete': boolean;
  'dry-run': boolean;
  exclude?: string[];
  compare: string;
};

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
    let remote = { fs: machine.fs, path: machinePath(direction === 'push' ? flags.dst : flags.src, isLocal) };
    let here = { fs: local, path: localPath };
    // rsync's rule: a source directory named without a trailing slash is copied itself, into the destination.
    const itself = directoryItself(flags.src);
    if (itself !== undefined) {
      const source = direction === 'push' ? here : remote;
      const type = (await source.fs.stat(source.path).catch(() => undefined))?.type;
      if (type === 'directory') {
        if (direction === 'push') remote = { ...remote, path: joinPath(remote.path, itself) };
        else here = { ...here, path: joinPath(here.path, itself) };
      }
    }
    const bar = process.stderr.isTTY ? new ProgressBar(process.stderr, `${direction} ${flags.machine}`) : undefined;
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      const dryRun = flags['dry-run'];
      const result = await syncDirectory(direction === 'push' ? here : remote, direction === 'push' ? remote : here, {
        delete: flags.delete,
        forceDelete: flags['force-delete'],
        dryRun,
        exclude: flags.exclude ?? [],
        compare: flags.compare as 'content' | 'size' | 'always',
        onProgress: bar && !dryRun ? (progress) => bar.update(progress) : undefined,
        signal: abort.signal,
      }).catch((error: unknown) => {
        const details = (error as { details?: Record<string, unknown> }).details;
        if (details?.['reason'] !== 'not-a-mirror') throw error;
        throw new CliError('INVALID_ARGUMENT', (error as Error).message, {
          hint: `check --src and --dst (DIR copies the directory itself into --dst, DIR/ its contents); see what would go with --dry-run; pass --force-delete if --dst really should become a copy of --src`,
          details,
          cause: error,
        });
      });
      bar?.done();
      this.emit({
        ok: result.ok,
        // codex-remote's echo of the request.
        mode: direction,
        machine: flags.machine,
        src: flags.src,
        dst: flags.dst,
        delete: flags.delete,
        exclude: flags.exclude ?? [],
        files: result.files,
        bytes: result.bytes,
        deleted: result.deleted,
        links: result.links,
        skipped: result.skipped,
        ...(result.planned ? { dry_run: true, would_copy: result.planned.copy, would_delete: result.planned.delete, would_link: result.planned.link } : {}),
      });
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

/** The name under which a source directory given without a trailing slash is copied (rsync's `DIR` vs `DIR/`); undefined when its contents are. */
export function directoryItself(src: string): string | undefined {
  if (src.endsWith('/') || src === '~') return undefined;
  const name = src.split('/').pop()!;
  return name === '' || name === '.' || name === '..' ? undefined : name;
}

function joinPath(base: string, name: string): string {
  return base.endsWith('/') ? `${base}${name}` : `${base}/${name}`;
}
