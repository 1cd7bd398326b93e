import { closeSync, constants, openSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { TetherError } from '@tether/core';
import { errnoOf, fsError, pathError } from './fsError.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = constants;
const DELETED = ' (deleted)';
/** Like the kernel's limit on symlinks followed in one lookup. */
const MAX_HOPS = 40;

/** Where a path ends up once every symlink in it is followed. */
export interface Resolved {
  /** The real path, with the components that do not exist yet appended to the deepest existing one. */
  readonly real: string;
  /** The real path of the deepest existing ancestor (equal to `real` when the path exists). */
  readonly existing: string;
  /** The components under `existing` that do not exist yet (empty when the path exists). */
  readonly missing: readonly string[];
}

/**
 * An open directory inside a root. With procfs, `at(name)` names `name` through
 * `/proc/self/fd/<fd>/`, which the kernel resolves from the open descriptor itself (as `openat`
 * would), so renaming or swapping the components of the path that led here cannot redirect it.
 */
export class DirHandle {
  constructor(
    readonly file: FileHandle,
    /** The directory's real path when it was opened (it may have moved since). */
    readonly realPath: string,
    private readonly viaProc: boolean,
  ) {}

  /** A path naming the entry `name` (a single component) of this directory. */
  at(name: string): string {
    return this.viaProc ? `/proc/self/fd/${this.file.fd}/${name}` : join(this.realPath, name);
  }

  /** A path naming this directory. */
  get self(): string {
    return this.viaProc ? `/proc/self/fd/${this.file.fd}` : this.realPath;
  }

  close(): Promise<void> {
    return this.file.close().catch(() => undefined);
  }
}

/**
 * The roots and every check that keeps a path inside them: lexical normalisation of the
 * caller's path, symlink resolution, and verification of opened descriptors.
 */
export class Confinement {
  /** The roots, resolved with realpath at construction. */
  readonly roots: readonly string[];
  /** True when descriptors are checked through /proc/self/fd (Linux); false: dev/ino fallback. */
  readonly procfs: boolean;
  /** The roots as configured (normalised, not resolved): a caller may name paths either way. */
  readonly #configured: readonly string[];
  readonly #home: string;
  /** Directories that are not roots on purpose, with why (said in the error of a path inside them). */
  readonly #leftOut: ReadonlyArray<{ readonly dir: string; readonly reason: string }>;

  constructor(roots: readonly string[], home: string, options: { readonly procfs?: boolean; readonly leftOut?: ReadonlyArray<{ readonly dir: string; readonly reason: string }> } = {}) {
    this.#home = home;
    this.#leftOut = options.leftOut ?? [];
    const configured: string[] = [];
    const real: string[] = [];
    for (const root of roots) {
      const abs = resolve(this.#expandHome(root));
      let resolved: string;
      try {
        resolved = realpathSync(abs);
        if (!statSync(resolved).isDirectory()) throw new TetherError('INVALID_ARGUMENT', `root is not a directory: ${root}`, { root });
      } catch (cause) {
        if (cause instanceof TetherError) throw cause;
        throw new TetherError('INVALID_ARGUMENT', `root does not exist or cannot be resolved: ${root}`, { root, errno: errnoOf(cause) }, { cause });
      }
      if (!configured.includes(abs)) configured.push(abs);
      if (!real.includes(resolved)) real.push(resolved);
    }
    if (real.length === 0) throw new TetherError('INVALID_ARGUMENT', 'at least one root is needed');
    this.roots = real;
    this.#configured = configured;
    this.procfs = options.procfs !== false && procfsWorks(real[0]!);
  }

  /**
   * The absolute, normalised form of a caller's path: `~` and `~/…` expand to the home
   * directory, relative paths resolve against the first root, `..` is resolved lexically.
   * Fails with `INVALID_ARGUMENT` for a non-string or empty path and `PATH_OUTSIDE_ROOT` for a
   * NUL byte or a path that does not name something under a root (as configured or resolved).
   */
  absolute(path: unknown): string {
    if (typeof path !== 'string' || path === '') throw new TetherError('INVALID_ARGUMENT', 'path must be a non-empty string');
    if (path.includes('\0')) throw new TetherError('PATH_OUTSIDE_ROOT', 'the path contains a NUL byte');
    const expanded = this.#expandHome(path);
    const abs = isAbsolute(expanded) ? resolve(expanded) : resolve(this.roots[0]!, expanded);
    if (!within(abs, this.#configured) && !within(abs, this.roots)) throw this.#outside(path, abs);
    return abs;
  }

  /** True when the real path `real` is a root or inside one. */
  contains(real: string): boolean {
    return within(real, this.roots);
  }

  isRoot(real: string): boolean {
    return this.roots.includes(real);
  }

  /**
   * Follows every symlink in the absolute path `abs`. When part of it does not exist, the
   * deepest existing ancestor is resolved and the rest appended; a dangling symlink is followed
   * to where it points. When the walk leaves the roots it stops there and answers that outside
   * path (so a failure further on never tells anything about what is outside). Rejects with the
   * raw errno error (ENOTDIR, EACCES, ELOOP) of a failure inside the roots.
   */
  async resolve(abs: string, hops = { n: 0 }): Promise<Resolved> {
    let failure: unknown;
    try {
      const real = await realpath(abs);
      return { real, existing: real, missing: [] };
    } catch (error) {
      failure = error;
    }
    // Walk it one component at a time to learn where, and on which side of the roots, it fails.
    const parent = dirname(abs);
    if (parent === abs) throw failure;
    const up = await this.resolve(parent, hops);
    const name = basename(abs);
    const here = { real: join(up.real, name), existing: up.existing, missing: [...up.missing, name] };
    if (!this.contains(up.real) || up.missing.length > 0) return here;
    let target: string | undefined;
    try {
      target = await readlink(here.real);
    } catch (error) {
      const errno = errnoOf(error);
      if (errno !== 'EINVAL' && errno !== 'ENOENT') throw error;
    }
    if (target === undefined) {
      if (errnoOf(failure) === 'ENOENT') return here;
      throw failure;
    }
    if (++hops.n > MAX_HOPS) throw Object.assign(new Error('too many levels of symbolic links'), { code: 'ELOOP' });
    return this.resolve(resolve(up.real, target), hops);
  }

  /** Opens the directory at the real path `real` (not following a final symlink) and verifies it. */
  async openDir(real: string, callerPath: string): Promise<DirHandle> {
    return this.#openDirAt(real, real, callerPath);
  }

  /** Opens the subdirectory `name` of `dir` (not following a symlink) and verifies it. */
  async openChildDir(dir: DirHandle, name: string, callerPath: string): Promise<DirHandle> {
    return this.#openDirAt(dir.at(name), join(dir.realPath, name), callerPath);
  }

  /**
   * Checks that what the descriptor `file` refers to is inside a root now. With procfs this reads
   * the kernel's own record of the open file's path (`/proc/self/fd/<fd>`); otherwise it compares
   * the descriptor's dev/ino with a fresh lookup of `expectedReal`, which must itself be inside.
   */
  async verify(file: FileHandle, expectedReal: string, callerPath: string): Promise<void> {
    let inside: boolean;
    try {
      if (this.procfs) {
        let where = await readlink(`/proc/self/fd/${file.fd}`);
        // An unlinked file (e.g. replaced by a rename while we opened it) is reported with this
        // suffix; a file whose name merely ends so still has links.
        if (where.endsWith(DELETED) && (await file.stat()).nlink === 0) where = where.slice(0, -DELETED.length);
        inside = this.contains(where);
      } else {
        const [opened, real] = await Promise.all([file.stat(), realpath(expectedReal)]);
        const now = await stat(real);
        inside = this.contains(real) && now.dev === opened.dev && now.ino === opened.ino;
      }
    } catch (error) {
      throw fsError(error, callerPath);
    }
    if (!inside) throw this.#outside(callerPath, expectedReal);
  }

  /** PATH_OUTSIDE_ROOT for `callerPath`; inside a directory left out of the default roots, with why. */
  #outside(callerPath: string, abs: string): TetherError {
    const note = this.#leftOut.find((l) => within(abs, [l.dir]));
    if (!note) return pathError('PATH_OUTSIDE_ROOT', callerPath);
    return pathError('PATH_OUTSIDE_ROOT', callerPath, undefined, { leftOut: note.dir, reason: note.reason });
  }

  async #openDirAt(path: string, real: string, callerPath: string): Promise<DirHandle> {
    let file: FileHandle;
    try {
      file = await open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (error) {
      throw fsError(error, callerPath);
    }
    try {
      await this.verify(file, real, callerPath);
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
    return new DirHandle(file, real, this.procfs);
  }

  #expandHome(path: string): string {
    if (path === '~') return this.#home;
    if (path.startsWith('~/')) return join(this.#home, path.slice(2));
    return path;
  }
}

function within(path: string, roots: readonly string[]): boolean {
  return roots.some((root) => path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`));
}

/** Whether /proc/self/fd reports the paths of open directories and can be walked through. */
function procfsWorks(dir: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(dir, O_RDONLY | O_DIRECTORY);
    return readlinkSync(`/proc/self/fd/${fd}`) === dir && statSync(`/proc/self/fd/${fd}/.`).ino === statSync(dir).ino;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
