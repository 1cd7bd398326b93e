import { Buffer } from 'node:buffer';
import { posix } from 'node:path';
import type { FileReadResult, FileStat, FileType } from '../backends.js';
import { TetherError, isTetherError } from '../errors.js';
import type { FsApi } from '../machine.js';
import { excludeMatcher, type ExcludeMatcher } from './excludeMatcher.js';

const MiB = 1024 * 1024;

/** One side of a sync: a filesystem and a path on it. */
export interface SyncEndpoint {
  /** Any filesystem: a `LocalFileSystemBackend` in this process, a machine's `fs` (local or remote). */
  readonly fs: FsApi;
  /** A directory or a file, as that filesystem resolves paths (absolute, `~/…`, or relative to its first root). */
  readonly path: string;
}

/**
 * When a file present on both sides with the same size and mode is transferred.
 * - `content` (default): both copies are read in ranges and compared byte for byte; the file is
 *   transferred only if they differ. Correct whatever the clocks say, and leaves equal target
 *   files untouched, at the cost of reading both copies (over a network: downloading the
 *   remote one). Modification times are not used: the API cannot set a target file's mtime, so
 *   after a copy the two never agree, and two machines' clocks need not agree either.
 * - `size`: never (like rsync's `--size-only`): fast, misses same-size edits.
 * - `always`: every file is transferred again.
 */
export type SyncCompare = 'content' | 'size' | 'always';

/** Reported after each chunk and each file. */
export interface SyncProgress {
  /** Files dealt with so far (transferred, compared equal, or skipped while being read), out of `totalFiles`. */
  readonly files: number;
  /** Bytes of those files read so far (compared or transferred), out of `totalBytes`. */
  readonly bytes: number;
  /** Files that needed a transfer or a comparison after the scan. */
  readonly totalFiles: number;
  /** Their sizes (as listed by the scan) added up. */
  readonly totalBytes: number;
  /** The file that made progress, relative to the source root (`/`-separated). */
  readonly path: string;
}

export interface SyncOptions {
  /** Entries left alone on both sides (never transferred, never deleted); syntax in `excludeMatcher`. Default none. */
  readonly exclude?: readonly string[];
  /**
   * Remove target entries that the source does not have (a directory with what is in it),
   * except excluded ones: a directory holding an excluded entry keeps that entry and itself.
   * Default false.
   */
  readonly delete?: boolean;
  /**
   * With `delete`: remove from a target that is not a mirror of the source. A target is taken
   * for a mirror when it is missing or empty, or shares at least one top-level entry (name and
   * kind) with the source; otherwise `delete` would empty an unrelated directory (a parent given
   * by mistake), and the sync fails with `INVALID_ARGUMENT` (`details.reason: 'not-a-mirror'`,
   * `details.wouldDelete`) before changing anything. Default false.
   */
  readonly forceDelete?: boolean;
  /** Change nothing: scan both sides (and compare contents as `compare` says) and report what would be copied and removed (`SyncResult.planned`). Default false. */
  readonly dryRun?: boolean;
  /** How files of equal size and mode are compared. Default `content`. */
  readonly compare?: SyncCompare;
  /** Files (and, during the scan, directories) handled at once. 1–64, default 4. */
  readonly concurrency?: number;
  /**
   * Bytes per read and per write call. A file up to this size is written with one atomic
   * `write`; a larger one through the chunked upload (`beginWrite`/`writeChunk`/`commitWrite`,
   * atomic too). Over the JSON-RPC protocol a chunk travels as base64 in one message, so keep
   * it under ~3/4 of the daemon's message limit (8 MiB by default). 1 byte – 64 MiB, default 4 MiB.
   * A backend whose per-call limit is lower answers `TOO_LARGE` with its limit; the sync then
   * uses that limit for that filesystem.
   */
  readonly chunkBytes?: number;
  /** Called after each chunk and each file; the numbers never decrease and end at the totals. */
  readonly onProgress?: (progress: SyncProgress) => void;
  /** Aborting stops the sync (open uploads are discarded) and it fails with `ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * Why an entry was not synced:
 * - `symlink`: the source entry is a symbolic link that is not recreated: it leads outside the
 *   synced tree, or the target cannot create it. The sync never follows one below the source root.
 * - `special`: a FIFO, socket or device.
 * - `vanished`: the source entry disappeared (or stopped being a file) during the sync.
 * - `unreadable`: the source refused to list or read it (`PERMISSION_DENIED`).
 * - `changed`: the source file changed size while it was read; the target copy was left as it was.
 * - `conflict`: a non-empty target directory (without `delete`), or one holding excluded
 *   entries, stands where the source has a file.
 */
export type SyncSkipReason = 'symlink' | 'special' | 'vanished' | 'unreadable' | 'changed' | 'conflict';

export interface SyncSkipped {
  /** Relative to the source root (`/`-separated); for a single-file sync, the file's name. */
  readonly path: string;
  readonly reason: SyncSkipReason;
  /** For people (e.g. a symlink's target). */
  readonly message: string;
}

export interface SyncResult {
  /**
   * True when the target now mirrors the source, apart from excluded entries and entries the
   * filesystem API cannot represent (`symlink`, `special`). False when something was
   * `vanished`, `unreadable`, `changed` or in `conflict`: running the sync again may fix it.
   */
  readonly ok: boolean;
  /** Files written to the target. */
  readonly files: number;
  /** Bytes written to the target. */
  readonly bytes: number;
  /** Target entries removed (`delete`, or replaced by an entry of another type); a directory removed with its contents counts once. */
  readonly deleted: number;
  /** Symbolic links created on the target. */
  readonly links: number;
  readonly skipped: readonly SyncSkipped[];
  /**
   * With `dryRun`: what the sync would do, paths relative to the source root (`/`-separated; a
   * directory removed with its contents is listed once). `files`, `bytes` and `deleted` then
   * count what would be written and removed.
   */
  readonly planned?: { readonly copy: readonly string[]; readonly delete: readonly string[]; readonly link: readonly string[] };
}

/**
 * Makes `target.path` a copy of `source.path`, over the filesystem API only, so that one
 * function does `tether sync push` (local → remote machine) and `pull` (remote → local).
 *
 * - A source directory's *contents* are mirrored into the target directory (rsync's `src/ dst/`),
 *   which is created (with parents) when missing. A target that exists but is not a directory
 *   fails with `NOT_A_DIRECTORY`.
 * - A source file is copied to `target.path`, or into it under the same name when that is an
 *   existing directory (as `cp` does). Missing parents are created.
 * - A file is transferred when the target lacks it, has something else there, or its size or
 *   permission bits differ; for equal size and mode see `compare`. Transfers are atomic (the old
 *   target file stays whole until the new one replaces it) and apply the source's mode.
 * - Directories, empty ones included, are created with the source's mode plus owner `rwx` (so the
 *   sync can fill a read-only one); the mode of an existing directory is not changed (the API
 *   has no chmod).
 * - A target symlink standing where the source has a file or directory is replaced, never
 *   written through. A source symlink leading inside the synced tree is recreated as a symlink
 *   (same target text); others, and special files, are skipped and reported.
 * - With `delete`, a target that shares no top-level entry with the source is refused unless
 *   `forceDelete` (see there); `dryRun` reports the plan and changes nothing.
 * - The sync scans both trees first (nothing is changed if the scan fails), then removes, then
 *   creates directories, then transfers files `concurrency` at a time.
 *
 * Fails with `PATH_NOT_FOUND` when the source does not exist, `INVALID_ARGUMENT` for bad options
 * or overlapping source and target on one filesystem, `ABORTED`, or the first error of the
 * filesystems (every failure is a TetherError; an upload in flight is aborted first).
 *
 * ```ts
 * const local = new LocalFileSystemBackend({ roots: [process.cwd()] });
 * const result = await syncDirectory({ fs: local, path: 'src' }, { fs: machine.fs, path: '~/job/src' }, { exclude: ['node_modules'], delete: true });
 * // { ok: true, files: 12, bytes: 48213, deleted: 1, skipped: [] }
 * ```
 */
export async function syncDirectory(source: SyncEndpoint, target: SyncEndpoint, options: SyncOptions = {}): Promise<SyncResult> {
  checkEndpoint(source, 'source');
  checkEndpoint(target, 'target');
  if (source.fs === target.fs && overlaps(source.path, target.path)) {
    throw new TetherError('INVALID_ARGUMENT', 'the source and the target overlap on the same filesystem', { source: source.path, target: target.path });
  }
  return new SyncRun(source, target, parseOptions(options)).run();
}

interface Settings {
  readonly matcher: ExcludeMatcher;
  readonly delete: boolean;
  readonly forceDelete: boolean;
  readonly dryRun: boolean;
  readonly compare: SyncCompare;
  readonly concurrency: number;
  readonly chunkBytes: number;
  readonly onProgress: ((progress: SyncProgress) => void) | undefined;
  readonly signal: AbortSignal | undefined;
}

interface FileTask {
  /** Relative to the sync root ('' for a single-file sync). */
  readonly rel: string;
  readonly size: number;
  readonly mode: number;
  readonly action: 'copy' | 'compare';
  /** A conflict that could not be cleared stands in the way. */
  blocked: boolean;
}

interface Removal {
  readonly rel: string;
  readonly type: FileType;
  /** `absent`: the source has no such entry (`delete`); `replaced`: the source has another type there. */
  readonly why: 'absent' | 'replaced';
  /** The file that needs this place. */
  readonly forFile?: FileTask;
}

/** A symbolic link to create on the target (its target as the source has it). */
interface LinkTask {
  readonly rel: string;
  readonly target: string;
}

interface Plan {
  readonly removals: Removal[];
  /** Symbolic links to create once directories and files are in place. */
  readonly links: LinkTask[];
  /** Directories to create, one array per depth, parents first. */
  readonly mkdirs: Array<Array<{ readonly rel: string; readonly mode: number }>>;
  readonly files: FileTask[];
}

interface Chunk {
  readonly data: Uint8Array;
  readonly eof: boolean;
}

/** A source file that cannot be synced now; becomes a `skipped` entry. */
class SkipFile extends Error {
  constructor(
    readonly reason: SyncSkipReason,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown in other workers once one has failed, so they stop at their next step. */
class Halted extends Error {}

class SyncRun {
  readonly #source: SyncEndpoint;
  readonly #target: SyncEndpoint;
  readonly #o: Settings;
  /** Single-file sync: the file's name (reported paths); '' for a directory sync. */
  #fileName = '';
  /** Where relative paths start on the target (the target file itself for a single-file sync). */
  #targetRoot: string;
  readonly #skipped: SyncSkipped[] = [];
  #files = 0;
  #bytes = 0;
  #deleted = 0;
  #links = 0;
  #halted = false;
  /** Lowered per filesystem when it answers `TOO_LARGE` with its own limit. */
  readonly #readLimits = new Map<FsApi, number>();
  #writeLimit: number;
  readonly #progress: ProgressTracker;

  constructor(source: SyncEndpoint, target: SyncEndpoint, settings: Settings) {
    this.#source = source;
    this.#target = target;
    this.#o = settings;
    this.#targetRoot = target.path;
    this.#writeLimit = settings.chunkBytes;
    this.#progress = new ProgressTracker(settings.onProgress, (rel) => this.#shown(rel));
  }

  async run(): Promise<SyncResult> {
    this.#checkpoint();
    const plan = await this.#scan();
    this.#checkpoint();
    if (this.#o.dryRun) return this.#dryRun(plan);
    await this.#pool(plan.removals, (removal) => this.#remove(removal));
    for (const level of plan.mkdirs) {
      await this.#pool(level, (dir) => retryUnknown(() => this.#target.fs.mkdir(this.#dst(dir.rel), { recursive: true, mode: dir.mode | 0o700 })));
    }
    const tasks = plan.files.filter((task) => !task.blocked);
    this.#progress.start(tasks);
    await this.#pool(tasks, (task) => this.#syncFile(task));
    await this.#pool(plan.links, (link) => this.#createLink(link));
    const incomplete = this.#skipped.some((s) => s.reason !== 'symlink' && s.reason !== 'special');
    const skipped = [...this.#skipped].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { ok: !incomplete, files: this.#files, bytes: this.#bytes, deleted: this.#deleted, links: this.#links, skipped };
  }

  /** What `plan` would do, contents compared (read-only) where `compare` asks for it. */
  async #dryRun(plan: Plan): Promise<SyncResult> {
    const copy: FileTask[] = [];
    await this.#pool(
      plan.files.filter((task) => !task.blocked),
      async (task) => {
        try {
          if (task.action === 'copy' || !(await this.#sameContent(task))) copy.push(task);
        } catch (error) {
          if (!(error instanceof SkipFile)) throw error;
          this.#skip(task.rel, error.reason, error.message);
        }
      },
    );
    const sorted = (paths: string[]) => paths.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const deletions = plan.removals.filter((r) => r.why === 'absent' || r.type !== 'directory' || this.#o.delete);
    const skipped = [...this.#skipped].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return {
      ok: !skipped.some((s) => s.reason !== 'symlink' && s.reason !== 'special'),
      files: copy.length,
      bytes: copy.reduce((sum, task) => sum + task.size, 0),
      deleted: deletions.length,
      links: plan.links.length,
      skipped,
      planned: {
        copy: sorted(copy.map((t) => this.#shown(t.rel))),
        delete: sorted(deletions.map((r) => this.#shown(r.rel))),
        link: sorted(plan.links.map((l) => this.#shown(l.rel))),
      },
    };
  }

  /** Refuses `delete` into a target that does not look like a copy of the source (see `forceDelete`). */
  #checkMirror(sources: readonly FileStat[], targets: readonly FileStat[]): void {
    if (!this.#o.delete || this.#o.forceDelete || targets.length === 0) return;
    const kinds = new Map(sources.map((entry) => [entry.name, entry.type === 'directory']));
    const shared = targets.some((entry) => kinds.get(entry.name) === (entry.type === 'directory'));
    if (shared) return;
    const wouldDelete = targets.filter((entry) => !kinds.has(entry.name) && !this.#excluded(entry.name, entry.type)).map((entry) => entry.name);
    if (wouldDelete.length === 0) return;
    throw new TetherError(
      'INVALID_ARGUMENT',
      `refusing to delete: ${this.#target.path} is not a mirror of ${this.#source.path} (they share no entry), and delete would remove ${wouldDelete.length} entr${wouldDelete.length === 1 ? 'y' : 'ies'} from it (${wouldDelete.slice(0, 3).join(', ')}${wouldDelete.length > 3 ? ', …' : ''})`,
      { reason: 'not-a-mirror', target: this.#target.path, wouldDelete: wouldDelete.slice(0, 100) },
    );
  }

  // ---- scan ---------------------------------------------------------------------------------

  async #scan(): Promise<Plan> {
    const plan: Plan = { removals: [], links: [], mkdirs: [], files: [] };
    const root = await rootStat(this.#source.fs, this.#source.path);
    if (!root) throw new TetherError('PATH_NOT_FOUND', `no such file or directory: ${this.#source.path}`, { path: this.#source.path });
    if (root.type === 'file') {
      await this.#scanFile(root, plan);
      return plan;
    }
    if (root.type !== 'directory') {
      const what = root.type === 'symlink' ? 'a symlink that does not lead to a directory' : `a ${root.type}`;
      throw new TetherError('NOT_A_FILE', `the source is ${what}: ${this.#source.path}`, { path: this.#source.path, type: root.type });
    }
    const targetRoot = await rootStat(this.#target.fs, this.#target.path);
    if (targetRoot && targetRoot.type !== 'directory') {
      throw new TetherError('NOT_A_DIRECTORY', `the target exists and is not a directory: ${this.#target.path}`, { path: this.#target.path });
    }
    if (!targetRoot) plan.mkdirs.push([{ rel: '', mode: root.followed ? 0o755 : root.mode }]);
    let level = [{ rel: '', onTarget: targetRoot !== undefined }];
    while (level.length > 0) {
      const next: typeof level = [];
      const mkdirs: Plan['mkdirs'][number] = [];
      await this.#pool(level, async (dir) => {
        this.#checkpoint();
        const [sources, targets] = await Promise.all([this.#listSource(dir.rel), dir.onTarget ? this.#listTarget(dir.rel) : []]);
        if (!sources) return;
        if (dir.rel === '') this.#checkMirror(sources, targets);
        const onTarget = new Map(targets.map((entry) => [entry.name, entry]));
        for (const entry of sources) {
          const rel = join(dir.rel, entry.name);
          if (this.#excluded(rel, entry.type)) continue;
          const there = onTarget.get(entry.name);
          if (there && this.#excluded(rel, there.type)) {
            this.#skip(rel, 'conflict', 'an excluded entry stands on the target');
          } else if (entry.type === 'directory') {
            if (there?.type === 'directory') {
              next.push({ rel, onTarget: true });
            } else {
              if (there) plan.removals.push({ rel, type: there.type, why: 'replaced' });
              mkdirs.push({ rel, mode: entry.mode });
              next.push({ rel, onTarget: false });
            }
          } else {
            this.#planEntry(rel, entry, there, plan);
          }
        }
        if (this.#o.delete) {
          const names = new Set(sources.map((entry) => entry.name));
          for (const entry of targets) {
            const rel = join(dir.rel, entry.name);
            if (!names.has(entry.name) && !this.#excluded(rel, entry.type)) plan.removals.push({ rel, type: entry.type, why: 'absent' });
          }
        }
      });
      if (mkdirs.length > 0) plan.mkdirs.push(mkdirs);
      level = next;
    }
    return plan;
  }

  async #scanFile(file: FileStat, plan: Plan): Promise<void> {
    this.#fileName = posix.basename(posix.normalize(this.#source.path)) || file.name;
    if (this.#excluded('', 'file')) return;
    const targetRoot = await rootStat(this.#target.fs, this.#target.path);
    if (targetRoot?.type === 'directory') {
      this.#targetRoot = join(this.#target.path, this.#fileName);
      this.#planEntry('', file, await statIfAny(this.#target.fs, this.#targetRoot), plan);
    } else {
      this.#planEntry('', file, targetRoot, plan);
    }
  }

  /** Decides what a non-directory source entry needs, given what the target has there. */
  #planEntry(rel: string, entry: FileStat, there: FileStat | undefined, plan: Plan): void {
    if (entry.type === 'symlink') return this.#planLink(rel, entry, there, plan);
    if (entry.type !== 'file') return this.#skip(rel, 'special', `a ${entry.type}`);
    let action: FileTask['action'] | undefined = 'copy';
    if (there?.type === 'file' && there.size === entry.size && there.mode === entry.mode) {
      action = this.#o.compare === 'always' ? 'copy' : this.#o.compare === 'content' ? 'compare' : undefined;
    }
    if (!action) return;
    const task: FileTask = { rel, size: entry.size, mode: entry.mode, action, blocked: false };
    if (there && there.type !== 'file') plan.removals.push({ rel, type: there.type, why: 'replaced', forFile: task });
    plan.files.push(task);
  }

  /**
   * A source symlink is recreated as a symlink when it leads to somewhere inside the synced tree
   * (a relative target that does not climb out of it); one that leads outside (an absolute
   * target, `../..`) is skipped, so the copy never points at what the source tree does not hold.
   */
  #planLink(rel: string, entry: FileStat, there: FileStat | undefined, plan: Plan): void {
    const target = entry.linkTarget;
    const shown = `a symbolic link${target === undefined ? '' : ` to ${target}`}`;
    if (target === undefined || this.#fileName !== '') return this.#skip(rel, 'symlink', shown);
    const leadsTo = posix.normalize(posix.join(posix.dirname(rel), target));
    if (target.startsWith('/') || leadsTo === '..' || leadsTo.startsWith('../')) {
      return this.#skip(rel, 'symlink', `${shown}, which leads outside the synced tree: not copied`);
    }
    if (typeof this.#target.fs.symlink !== 'function') return this.#skip(rel, 'symlink', `${shown}: the target cannot create symbolic links`);
    if (there?.type === 'symlink' && there.linkTarget === target) return;
    if (there?.type === 'directory') {
      if (!this.#o.delete) return this.#skip(rel, 'conflict', 'a directory stands on the target where the source has a symbolic link (sync with delete to replace it)');
      plan.removals.push({ rel, type: there.type, why: 'replaced' });
    } else if (there) {
      plan.removals.push({ rel, type: there.type, why: 'replaced' });
    }
    plan.links.push({ rel, target });
  }

  async #createLink(link: LinkTask): Promise<void> {
    this.#checkpoint();
    try {
      await this.#target.fs.symlink!(link.target, this.#dst(link.rel));
      this.#links++;
    } catch (error) {
      // A target that refuses this link (it would leave its roots, an older daemon) leaves it out; the rest goes on.
      if (!isTetherError(error)) throw wrap(error);
      if (error.code === 'PATH_OUTSIDE_ROOT' || error.code === 'BACKEND_UNAVAILABLE' || error.code === 'INVALID_ARGUMENT' || error.code === 'PERMISSION_DENIED') {
        this.#skip(link.rel, 'symlink', `a symbolic link to ${link.target}: not created on the target (${error.message})`);
        return;
      }
      throw error;
    }
  }

  async #listSource(rel: string): Promise<FileStat[] | undefined> {
    try {
      return await this.#source.fs.list(this.#src(rel));
    } catch (error) {
      if (rel !== '' && (isTetherError(error, 'PATH_NOT_FOUND') || isTetherError(error, 'NOT_A_DIRECTORY'))) {
        this.#skip(rel, 'vanished', 'the directory disappeared during the sync');
        return undefined;
      }
      if (rel !== '' && isTetherError(error, 'PERMISSION_DENIED')) {
        this.#skip(rel, 'unreadable', error.message);
        return undefined;
      }
      throw wrap(error);
    }
  }

  async #listTarget(rel: string): Promise<FileStat[]> {
    try {
      return await this.#target.fs.list(this.#dst(rel));
    } catch (error) {
      if (isTetherError(error, 'PATH_NOT_FOUND') || isTetherError(error, 'NOT_A_DIRECTORY')) return [];
      throw wrap(error);
    }
  }

  // ---- removals -----------------------------------------------------------------------------

  async #remove(removal: Removal): Promise<void> {
    this.#checkpoint();
    const path = this.#dst(removal.rel);
    if (removal.type !== 'directory') {
      await this.#removePath(path, false);
      this.#deleted++;
      return;
    }
    if (removal.why === 'replaced' && !this.#o.delete) {
      try {
        await this.#removePath(path, false);
        this.#deleted++;
      } catch (error) {
        if (!isTetherError(error, 'DIRECTORY_NOT_EMPTY') || !removal.forFile) throw error;
        this.#block(removal.forFile, 'a non-empty directory stands where the source has a file (sync with delete to replace it)');
      }
      return;
    }
    const result = await this.#removeTree(removal.rel);
    this.#deleted += result.all ? 1 : result.count;
    if (!result.all && removal.forFile) this.#block(removal.forFile, 'a directory holding excluded entries stands where the source has a file');
  }

  /**
   * Removes the target directory `rel` except excluded entries (and the directories holding
   * them). `all`: it is gone; otherwise `count` top-most entries below it were removed.
   */
  async #removeTree(rel: string): Promise<{ all: boolean; count: number }> {
    if (this.#o.matcher.empty) {
      await this.#removePath(this.#dst(rel), true);
      return { all: true, count: 0 };
    }
    let kept = false;
    let count = 0;
    for (const entry of await this.#listTarget(rel)) {
      this.#checkpoint();
      const child = join(rel, entry.name);
      if (this.#excluded(child, entry.type)) {
        kept = true;
      } else if (entry.type === 'directory') {
        const result = await this.#removeTree(child);
        kept ||= !result.all;
        count += result.all ? 1 : result.count;
      } else {
        await this.#removePath(this.#dst(child), false);
        count++;
      }
    }
    if (kept) return { all: false, count };
    await this.#removePath(this.#dst(rel), false);
    return { all: true, count: 0 };
  }

  async #removePath(path: string, recursive: boolean): Promise<void> {
    try {
      await retryUnknown(() => this.#target.fs.remove(path, { recursive }));
    } catch (error) {
      // Already gone (or removed by a first attempt whose reply was lost): the goal is reached.
      if (!isTetherError(error, 'PATH_NOT_FOUND')) throw wrap(error);
    }
  }

  #block(task: FileTask, message: string): void {
    task.blocked = true;
    this.#skip(task.rel, 'conflict', message);
  }

  // ---- files --------------------------------------------------------------------------------

  async #syncFile(task: FileTask): Promise<void> {
    this.#checkpoint();
    try {
      if (task.action === 'copy' || !(await this.#sameContent(task))) {
        const written = await this.#copy(task);
        this.#files++;
        this.#bytes += written;
      }
    } catch (error) {
      if (!(error instanceof SkipFile)) throw error;
      this.#skip(task.rel, error.reason, error.message);
    }
    this.#progress.finish(task);
  }

  /** Reads both copies in ranges, side by side, and stops at the first difference. */
  async #sameContent(task: FileTask): Promise<boolean> {
    const src = this.#src(task.rel);
    const dst = this.#dst(task.rel);
    let offset = 0;
    for (;;) {
      this.#checkpoint();
      const [mine, theirs] = await Promise.all([
        this.#read(this.#source.fs, src, offset).catch((error: unknown) => Promise.reject(sourceFailure(error))),
        this.#read(this.#target.fs, dst, offset).catch((error: unknown) =>
          isTetherError(error, 'PATH_NOT_FOUND') || isTetherError(error, 'NOT_A_FILE') ? undefined : Promise.reject(wrap(error)),
        ),
      ]);
      if (!theirs || mine.size !== task.size || theirs.size !== task.size) return false;
      const n = Math.min(mine.data.byteLength, theirs.data.byteLength);
      if (!equalBytes(mine.data, theirs.data, n)) return false;
      offset += n;
      this.#progress.advance(task, offset);
      if (offset >= task.size) return true;
      if (n === 0) return false;
    }
  }

  /** Transfers one file; resolves with the bytes written. */
  async #copy(task: FileTask): Promise<number> {
    const dst = this.#dst(task.rel);
    const reader = this.#reader(this.#src(task.rel));
    const first = await reader();
    const writeOptions = { mode: task.mode, mkdir: this.#fileName !== '' };
    if (first.eof && first.data.byteLength <= this.#writeLimit) {
      try {
        const { bytesWritten } = await retryUnknown(() => this.#target.fs.write(dst, first.data, writeOptions));
        this.#progress.advance(task, bytesWritten);
        return bytesWritten;
      } catch (error) {
        if (!this.#lowerWriteLimit(error, first.data.byteLength)) throw wrap(error);
      }
    }
    const { uploadId } = await retryUnknown(() => this.#target.fs.beginWrite(dst, writeOptions));
    try {
      let chunk = first;
      let offset = 0;
      for (;;) {
        this.#checkpoint();
        // Read the next chunk while this one is being written.
        const ahead = chunk.eof ? undefined : reader();
        ahead?.catch(() => undefined);
        offset = await this.#sendChunk(uploadId, offset, chunk.data);
        this.#progress.advance(task, offset);
        if (!ahead) break;
        chunk = await ahead;
      }
      const { bytesWritten } = await retryUnknown(() => this.#target.fs.commitWrite(uploadId));
      return bytesWritten;
    } catch (error) {
      await this.#target.fs.abortWrite(uploadId).catch(() => undefined);
      throw wrap(error);
    }
  }

  /** Appends `data` to the upload at `offset` (in pieces if the target takes less per call); resolves with the new offset. */
  async #sendChunk(uploadId: string, offset: number, data: Uint8Array): Promise<number> {
    let sent = 0;
    while (sent < data.byteLength) {
      const piece = data.subarray(sent, sent + this.#writeLimit);
      try {
        const { received } = await this.#target.fs.writeChunk(uploadId, offset + sent, piece);
        const expected = offset + sent + piece.byteLength;
        if (received !== expected) throw new TetherError('INTERNAL', `the upload holds ${received} bytes, ${expected} expected`, { uploadId, received, expected });
        sent += piece.byteLength;
      } catch (error) {
        if (!this.#lowerWriteLimit(error, piece.byteLength)) throw error;
      }
    }
    return offset + sent;
  }

  /**
   * Reads a source file chunk by chunk. Fails with SkipFile when the file disappears, cannot be
   * read, or changes size between reads (a copy made of such reads could be torn).
   */
  #reader(path: string): () => Promise<Chunk> {
    let offset = 0;
    let size: number | undefined;
    return async () => {
      let result: FileReadResult;
      try {
        result = await this.#read(this.#source.fs, path, offset);
      } catch (error) {
        throw sourceFailure(error);
      }
      size ??= result.size;
      const changed = new SkipFile('changed', 'the file changed while it was read; the target was left as it was');
      if (result.size !== size || (!result.eof && result.data.byteLength === 0)) throw changed;
      offset += result.data.byteLength;
      if (result.eof && offset !== size) throw changed;
      return { data: result.data, eof: result.eof };
    };
  }

  /** One ranged read of at most `chunkBytes` (or the filesystem's own lower limit). */
  async #read(fs: FsApi, path: string, offset: number): Promise<FileReadResult> {
    for (;;) {
      const length = this.#readLimits.get(fs) ?? this.#o.chunkBytes;
      try {
        return await fs.read(path, { offset, length });
      } catch (error) {
        const limit = tooLargeLimit(error);
        if (limit === undefined || limit >= length) throw error;
        this.#readLimits.set(fs, limit);
      }
    }
  }

  #lowerWriteLimit(error: unknown, attempted: number): boolean {
    const limit = tooLargeLimit(error);
    if (limit === undefined || limit >= attempted) return false;
    this.#writeLimit = Math.min(this.#writeLimit, limit);
    return true;
  }

  // ---- plumbing -----------------------------------------------------------------------------

  /** Runs `work` on every item, `concurrency` at a time; after the first failure starts no more and fails with it. */
  async #pool<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<void> {
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (!failure && next < items.length) {
        const item = items[next++]!;
        try {
          await work(item);
        } catch (error) {
          if (!failure && !(error instanceof Halted)) {
            failure = { error };
            this.#halted = true;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, items.length) }, worker));
    if (failure) throw wrap(failure.error);
    this.#checkpoint();
  }

  #checkpoint(): void {
    if (this.#o.signal?.aborted) throw new TetherError('ABORTED', 'the sync was aborted', {}, { cause: this.#o.signal.reason });
    if (this.#halted) throw new Halted();
  }

  #excluded(rel: string, type: FileType): boolean {
    return this.#o.matcher.excludes(this.#shown(rel), type === 'directory');
  }

  #skip(rel: string, reason: SyncSkipReason, message: string): void {
    this.#skipped.push({ path: this.#shown(rel), reason, message });
  }

  /** The path reported for `rel`: relative to the source root, or under the file's name for a single-file sync. */
  #shown(rel: string): string {
    return this.#fileName === '' ? rel : join(this.#fileName, rel);
  }

  #src(rel: string): string {
    return join(this.#source.path, rel);
  }

  #dst(rel: string): string {
    return join(this.#targetRoot, rel);
  }
}

/** Adds up per-file progress so that the totals only grow and end exactly at the plan's totals. */
class ProgressTracker {
  #files = 0;
  #bytes = 0;
  #totalFiles = 0;
  #totalBytes = 0;
  readonly #done = new Map<FileTask, number>();

  constructor(
    private readonly onProgress: ((progress: SyncProgress) => void) | undefined,
    private readonly shown: (rel: string) => string,
  ) {}

  start(tasks: readonly FileTask[]): void {
    this.#totalFiles = tasks.length;
    this.#totalBytes = tasks.reduce((sum, task) => sum + task.size, 0);
  }

  /** `task` has been read up to `offset` (a transfer after a comparison starts again at 0: only new ground counts). */
  advance(task: FileTask, offset: number): void {
    const before = this.#done.get(task) ?? 0;
    const now = Math.min(offset, task.size);
    if (now <= before) return;
    this.#done.set(task, now);
    this.#bytes += now - before;
    this.#emit(task);
  }

  finish(task: FileTask): void {
    this.#bytes += task.size - (this.#done.get(task) ?? 0);
    this.#done.delete(task);
    this.#files++;
    this.#emit(task);
  }

  #emit(task: FileTask): void {
    this.onProgress?.({ files: this.#files, bytes: this.#bytes, totalFiles: this.#totalFiles, totalBytes: this.#totalBytes, path: this.shown(task.rel) });
  }
}

// ---- helpers ------------------------------------------------------------------------------------

type RootStat = FileStat & { readonly followed?: boolean };

/** Stat of a root path, a symlink to a directory followed (`followed`); undefined when missing. */
async function rootStat(fs: FsApi, path: string): Promise<RootStat | undefined> {
  const stat = await statIfAny(fs, path);
  if (stat?.type !== 'symlink') return stat;
  try {
    await fs.list(path);
    return { ...stat, type: 'directory', followed: true };
  } catch (error) {
    if (isTetherError(error, 'NOT_A_DIRECTORY') || isTetherError(error, 'PATH_NOT_FOUND')) return stat;
    throw wrap(error);
  }
}

async function statIfAny(fs: FsApi, path: string): Promise<FileStat | undefined> {
  try {
    return await fs.stat(path);
  } catch (error) {
    if (isTetherError(error, 'PATH_NOT_FOUND')) return undefined;
    throw wrap(error);
  }
}

/** Retries a call whose reply was lost (`OUTCOME_UNKNOWN`); only for calls that are safe to repeat. */
async function retryUnknown<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= 3 || !isTetherError(error, 'OUTCOME_UNKNOWN')) throw error;
    }
  }
}

function sourceFailure(error: unknown): unknown {
  if (isTetherError(error, 'PATH_NOT_FOUND') || isTetherError(error, 'NOT_A_FILE')) return new SkipFile('vanished', 'the file disappeared or stopped being a file during the sync');
  if (isTetherError(error, 'PERMISSION_DENIED')) return new SkipFile('unreadable', error.message);
  return wrap(error);
}

function tooLargeLimit(error: unknown): number | undefined {
  if (!isTetherError(error, 'TOO_LARGE')) return undefined;
  const limit = error.details['limit'];
  return typeof limit === 'number' && Number.isSafeInteger(limit) && limit > 0 ? limit : undefined;
}

function wrap(error: unknown): unknown {
  if (isTetherError(error) || error instanceof SkipFile || error instanceof Halted) return error;
  return new TetherError('INTERNAL', `the sync failed: ${error instanceof Error ? error.message : String(error)}`, {}, { cause: error });
}

function equalBytes(a: Uint8Array, b: Uint8Array, length: number): boolean {
  return Buffer.from(a.buffer, a.byteOffset, length).equals(Buffer.from(b.buffer, b.byteOffset, length));
}

function join(base: string, rel: string): string {
  if (rel === '') return base;
  if (base === '') return rel;
  return base.endsWith('/') ? base + rel : `${base}/${rel}`;
}

function overlaps(a: string, b: string): boolean {
  const norm = (p: string) => {
    const n = posix.normalize(p);
    return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
  };
  const [x, y] = [norm(a), norm(b)];
  const relative = (p: string) => !p.startsWith('/') && !p.startsWith('~');
  const inside = (inner: string, outer: string) =>
    inner === outer || (outer === '.' ? relative(inner) : inner.startsWith(outer === '/' ? '/' : `${outer}/`));
  return inside(x, y) || inside(y, x);
}

function checkEndpoint(endpoint: SyncEndpoint, which: string): void {
  const fs = (endpoint as Partial<SyncEndpoint> | null)?.fs;
  if (typeof fs?.stat !== 'function' || typeof fs.list !== 'function' || typeof fs.read !== 'function') {
    throw new TetherError('INVALID_ARGUMENT', `the ${which} needs a filesystem (fs)`, { which });
  }
  if (typeof endpoint.path !== 'string' || endpoint.path === '' || endpoint.path.includes('\0')) {
    throw new TetherError('INVALID_ARGUMENT', `the ${which} path must be a non-empty string`, { which });
  }
}

function parseOptions(options: SyncOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new TetherError('INVALID_ARGUMENT', 'sync options must be an object');
  const exclude = options.exclude ?? [];
  if (!Array.isArray(exclude)) throw new TetherError('INVALID_ARGUMENT', 'exclude must be an array of patterns');
  const integer = (value: unknown, name: string, min: number, max: number, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new TetherError('INVALID_ARGUMENT', `${name} must be an integer from ${min} to ${max}`, { [name]: value });
    }
    return value;
  };
  const compare = options.compare ?? 'content';
  if (compare !== 'content' && compare !== 'size' && compare !== 'always') {
    throw new TetherError('INVALID_ARGUMENT', 'compare must be content, size or always', { compare });
  }
  if (options.delete !== undefined && typeof options.delete !== 'boolean') throw new TetherError('INVALID_ARGUMENT', 'delete must be a boolean');
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new TetherError('INVALID_ARGUMENT', 'onProgress must be a function');
  return {
    matcher: excludeMatcher(exclude),
    delete: options.delete ?? false,
    forceDelete: options.forceDelete === true,
    dryRun: options.dryRun === true,
    compare,
    concurrency: integer(options.concurrency, 'concurrency', 1, 64, 4),
    chunkBytes: integer(options.chunkBytes, 'chunkBytes', 1, 64 * MiB, 4 * MiB),
    onProgress: options.onProgress,
    signal: options.signal,
  };
}
