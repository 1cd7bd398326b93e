import { randomBytes, randomUUID } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readlink, rename, rmdir, symlink, unlink, type FileHandle } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import {
  TetherError,
  isTetherError,
  type FileReadOptions,
  type FileReadResult,
  type FileStat,
  type FileSystemBackend,
  type FileType,
  type FileWriteOptions,
} from '@tether/core';
import { Confinement, type DirHandle } from './confinement.js';
import { FileSystemConfig, type FileSystemConfigInput } from './fileSystemConfig.js';
import { errnoOf, fsError, pathError } from './fsError.js';
import { tempRoots, type TempRootOptions } from './tempRoots.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const Mode = z.number().int().min(0).max(0o7777);
const ReadOptions = z.object({ offset: Count.optional(), length: Count.optional() }).optional();
const WriteOptions = z.object({ mode: Mode.optional(), mkdir: z.boolean().optional(), overwrite: z.boolean().optional() }).optional();
const MkdirOptions = z.object({ recursive: z.boolean().optional(), mode: Mode.optional() }).optional();
const RemoveOptions = z.object({ recursive: z.boolean().optional() }).optional();
const MoveOptions = z.object({ overwrite: z.boolean().optional() }).optional();
const UploadId = z.string().min(1).max(128);

/** Where an atomic write will land: an open, verified directory and the entry name in it. */
interface Destination {
  readonly callerPath: string;
  readonly dir: DirHandle;
  readonly name: string;
  readonly mode: number;
  readonly overwrite: boolean;
  /** Owner of the file being replaced, kept on the new file where the OS allows. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

interface TempFile {
  readonly name: string;
  readonly file: FileHandle;
}

interface Upload {
  readonly dest: Destination;
  readonly temp: TempFile;
  received: number;
  expiresAt: number;
  /** Calls on one upload run one at a time, in arrival order. */
  queue: Promise<unknown>;
  done: boolean;
}

/** Construction options that are not configuration. */
export interface LocalFileSystemBackendOptions {
  /**
   * Check descriptors through /proc/self/fd when the platform has it. Default true; false forces
   * the portable dev/ino fallback (for tests of that path).
   */
  readonly procfs?: boolean;
  /** Decides whether a shared /tmp joins the default roots (see `tempRoots`). Default: what /proc/sys/fs says. */
  readonly kernelProtectsStickyDirs?: TempRootOptions['kernelProtectsStickyDirs'];
}

/**
 * The filesystem backend on the local disk, confined to the configured roots.
 *
 * Every path is normalised (`~`, relative to the first root, `..` resolved lexically), resolved
 * through its symlinks (a path that does not exist yet: through its deepest existing ancestor)
 * and refused with `PATH_OUTSIDE_ROOT` unless it ends inside a root. Operations then act through
 * a verified descriptor of the parent directory (see `Confinement`), never by re-walking the path,
 * so a concurrent symlink swap cannot redirect them outside. See README.md for what stays racy.
 *
 * ```ts
 * const fs = new LocalFileSystemBackend({ roots: ['/srv/work'] });
 * await fs.write('notes/a.txt', new TextEncoder().encode('hi'), { mkdir: true });
 * const { data, eof } = await fs.read('notes/a.txt', { offset: 0, length: 1024 });
 * ```
 */
export class LocalFileSystemBackend implements FileSystemBackend {
  /** The validated configuration, defaults applied. */
  readonly config: FileSystemConfig;
  readonly #confinement: Confinement;
  readonly #uploads = new Map<string, Upload>();
  /** Committed uploads, so that a retried commit (reply lost) answers the same. */
  readonly #committed = new Map<string, { bytesWritten: number; expiresAt: number }>();
  #sweeper: NodeJS.Timeout | undefined;

  /** Throws `INVALID_ARGUMENT` for an invalid config or a root that does not exist. */
  constructor(config: FileSystemConfigInput = {}, options: LocalFileSystemBackendOptions = {}) {
    const parsed = FileSystemConfig.safeParse(config);
    if (!parsed.success) throw invalid('filesystem config', parsed.error);
    this.config = parsed.data;
    const home = homedir();
    let roots = this.config.roots;
    let leftOut: Array<{ dir: string; reason: string }> = [];
    if (!roots) {
      // The default: home, the data dir, and the temp dirs that are safe to share (see tempRoots).
      const temps = tempRoots(options);
      roots = [home, ...(this.config.dataDir === undefined ? [] : [this.config.dataDir]), ...temps.filter((t) => t.included).map((t) => t.dir)];
      leftOut = temps.filter((t) => !t.included).map((t) => ({ dir: t.dir, reason: t.reason! }));
    }
    this.#confinement = new Confinement(roots, home, { ...options, leftOut });
  }

  /** The roots, resolved with realpath. */
  get roots(): readonly string[] {
    return this.#confinement.roots;
  }

  /** How opened descriptors are checked: `procfs` (Linux, race-free) or `realpath` (dev/ino fallback). */
  get descriptorCheck(): 'procfs' | 'realpath' {
    return this.#confinement.procfs ? 'procfs' : 'realpath';
  }

  /** Describes the entry itself: a symlink is reported as `symlink` with its `linkTarget`, not followed. */
  async stat(path: string): Promise<FileStat> {
    const entry = await this.#entry(path);
    if (entry.root !== undefined) {
      const st = await lstat(entry.root).catch((e: unknown) => Promise.reject(fsError(e, entry.callerPath)));
      return toFileStat(entry.callerPath, entry.name, st);
    }
    return this.#inDir(entry.parent, entry.callerPath, async (dir) => {
      const st = await lstat(dir.at(entry.name));
      const linkTarget = st.isSymbolicLink() ? await readlink(dir.at(entry.name)) : undefined;
      return toFileStat(entry.callerPath, entry.name, st, linkTarget);
    });
  }

  /**
   * The entries of a directory (a symlink to one is followed), each described as by `stat`,
   * sorted by name; `path` of each is the caller's path joined with the name.
   */
  async list(path: string): Promise<FileStat[]> {
    const target = await this.#target(path);
    if (target.resolved.missing.length > 0) throw pathError('PATH_NOT_FOUND', target.callerPath);
    const prefix = target.callerPath.endsWith('/') ? target.callerPath : `${target.callerPath}/`;
    return this.#inDir(target.resolved.real, target.callerPath, async (dir) => {
      const names = await readdir(dir.self);
      const entries: FileStat[] = [];
      for (let i = 0; i < names.length; i += 64) {
        const batch = await Promise.all(
          names.slice(i, i + 64).map(async (name) => {
            try {
              const st = await lstat(dir.at(name));
              const linkTarget = st.isSymbolicLink() ? await readlink(dir.at(name)) : undefined;
              return toFileStat(prefix + name, name, st, linkTarget);
            } catch (error) {
              if (errnoOf(error) === 'ENOENT') return undefined; // removed since readdir
              throw error;
            }
          }),
        );
        for (const entry of batch) if (entry) entries.push(entry);
      }
      return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  /**
   * Reads up to `length` bytes from `offset`. Without `length`, reads to the end of the file but
   * at most `maxReadBytes` (then `eof` is false: continue from `offset + data.length`). A
   * `length` above `maxReadBytes` fails with `TOO_LARGE`. FIFOs, sockets and devices are refused
   * with `NOT_A_FILE` without blocking.
   */
  async read(path: string, options?: FileReadOptions): Promise<FileReadResult> {
    const o = parse(ReadOptions, options, 'read options') ?? {};
    const limit = this.config.maxReadBytes;
    if (o.length !== undefined && o.length > limit) {
      throw new TetherError('TOO_LARGE', `a read returns at most ${limit} bytes; read in ranges`, { limit, requested: o.length });
    }
    const target = await this.#target(path);
    const { callerPath, resolved } = target;
    if (resolved.missing.length > 0) throw pathError('PATH_NOT_FOUND', callerPath);
    if (this.#confinement.isRoot(resolved.real)) throw pathError('NOT_A_FILE', callerPath);
    const name = basename(resolved.real);
    return this.#inDir(dirname(resolved.real), callerPath, async (dir) => {
      // Refuse special files before opening them: opening some devices has side effects.
      const before = await lstat(dir.at(name));
      if (before.isSymbolicLink()) throw pathError('PATH_NOT_FOUND', callerPath, 'the path changed while it was being opened');
      if (!before.isFile()) throw pathError('NOT_A_FILE', callerPath);
      const file = await open(dir.at(name), O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
      try {
        const st = await file.stat();
        if (!st.isFile()) throw pathError('NOT_A_FILE', callerPath);
        await this.#confinement.verify(file, join(dir.realPath, name), callerPath);
        const offset = o.offset ?? 0;
        // Reads stop at the size seen at open, so `size`, `eof` and the data agree.
        const want = Math.min(o.length ?? limit, Math.max(0, st.size - offset));
        const data = new Uint8Array(want);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await file.read(data, got, want - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return { data: got === want ? data : data.subarray(0, got), size: st.size, eof: offset + got >= st.size || got < want };
      } finally {
        await file.close().catch(() => undefined);
      }
    });
  }

  /**
   * Writes the whole file atomically: a temp file in the same directory, fsync, rename (and an
   * fsync of the directory). A symlink at `path` is written through (the link stays). With
   * `overwrite: false` the file is put in place with link(2), so an existing file is never
   * replaced even by a racing writer. On failure the temp file is removed and an old file is
   * untouched. `mode` is applied exactly (not masked by the umask).
   */
  async write(path: string, data: Uint8Array, options?: FileWriteOptions): Promise<{ bytesWritten: number }> {
    checkData(data);
    const o = parse(WriteOptions, options, 'write options') ?? {};
    this.#checkWriteSize(data.byteLength);
    const dest = await this.#prepareWrite(path, o);
    try {
      const temp = await this.#createTemp(dest);
      try {
        await writeAll(temp.file, data, 0);
      } catch (error) {
        await this.#discardTemp(dest, temp);
        throw fsError(error, dest.callerPath);
      }
      await this.#install(dest, temp);
    } finally {
      await dest.dir.close();
    }
    return { bytesWritten: data.byteLength };
  }

  /**
   * Starts a chunked upload to `path` (checked and resolved now, like `write`): creates the temp
   * file and holds it and its directory open until commit, abort or expiry (`uploadTtlMs` without
   * a call). Fails with `TOO_LARGE` when `maxUploads` are open.
   */
  async beginWrite(path: string, options?: FileWriteOptions): Promise<{ uploadId: string }> {
    const o = parse(WriteOptions, options, 'write options') ?? {};
    if (this.#uploads.size >= this.config.maxUploads) {
      throw new TetherError('TOO_LARGE', `at most ${this.config.maxUploads} uploads may be open at once`, { limit: this.config.maxUploads });
    }
    const dest = await this.#prepareWrite(path, o);
    let temp: TempFile;
    try {
      temp = await this.#createTemp(dest);
    } catch (error) {
      await dest.dir.close();
      throw error;
    }
    const uploadId = randomUUID();
    this.#uploads.set(uploadId, { dest, temp, received: 0, expiresAt: Date.now() + this.config.uploadTtlMs, queue: Promise.resolve(), done: false });
    this.#startSweeper();
    return { uploadId };
  }

  /**
   * Appends `data` at `offset`, which must equal the bytes received so far. A chunk with an
   * older offset (a retry of one already taken) changes nothing and answers the current
   * `received`; a later offset fails with `INVALID_ARGUMENT` (`details.expected`). An unknown or
   * expired id fails with `INVALID_ARGUMENT`.
   */
  async writeChunk(uploadId: string, offset: number, data: Uint8Array): Promise<{ received: number }> {
    parse(UploadId, uploadId, 'upload id');
    parse(Count, offset, 'offset');
    checkData(data);
    this.#checkWriteSize(data.byteLength);
    const upload = this.#upload(uploadId);
    return this.#serial(upload, async () => {
      if (upload.done) throw unknownUpload(uploadId);
      if (offset < upload.received) return { received: upload.received };
      if (offset > upload.received) {
        throw new TetherError('INVALID_ARGUMENT', `chunk offset ${offset} is past the ${upload.received} bytes received`, { uploadId, expected: upload.received });
      }
      const limit = this.config.maxFileBytes;
      if (upload.received + data.byteLength > limit) throw new TetherError('TOO_LARGE', `an upload may hold at most ${limit} bytes`, { limit });
      try {
        await writeAll(upload.temp.file, data, offset);
      } catch (error) {
        throw fsError(error, upload.dest.callerPath);
      }
      upload.received += data.byteLength;
      upload.expiresAt = Date.now() + this.config.uploadTtlMs;
      return { received: upload.received };
    });
  }

  /**
   * Puts the uploaded bytes in place atomically (fsync, re-check of the directory, rename). A
   * repeated commit of the same id answers the same result for `uploadTtlMs`. If the commit
   * fails (e.g. `PATH_EXISTS` with `overwrite: false`) the upload is discarded.
   */
  async commitWrite(uploadId: string): Promise<{ bytesWritten: number }> {
    parse(UploadId, uploadId, 'upload id');
    const committed = this.#committed.get(uploadId);
    if (committed) return { bytesWritten: committed.bytesWritten };
    const upload = this.#upload(uploadId);
    return this.#serial(upload, async () => {
      if (upload.done) {
        const again = this.#committed.get(uploadId);
        if (again) return { bytesWritten: again.bytesWritten };
        throw unknownUpload(uploadId);
      }
      upload.done = true;
      this.#uploads.delete(uploadId);
      try {
        try {
          await upload.temp.file.truncate(upload.received); // drop bytes of a chunk that failed midway
        } catch (error) {
          await this.#discardTemp(upload.dest, upload.temp);
          throw fsError(error, upload.dest.callerPath);
        }
        await this.#install(upload.dest, upload.temp);
      } finally {
        await upload.dest.dir.close();
      }
      this.#committed.set(uploadId, { bytesWritten: upload.received, expiresAt: Date.now() + this.config.uploadTtlMs });
      this.#startSweeper();
      return { bytesWritten: upload.received };
    });
  }

  /** Discards an upload and its temp file. Unknown ids are ignored (abort is idempotent). */
  async abortWrite(uploadId: string): Promise<void> {
    parse(UploadId, uploadId, 'upload id');
    const upload = this.#uploads.get(uploadId);
    if (upload) await this.#discardUpload(uploadId, upload);
  }

  /**
   * Creates a directory. Without `recursive` the parent must exist and the directory must not;
   * with it, missing parents are created and an existing directory is fine. `mode` is applied
   * exactly to the directories created; default: 0o777 less the process umask.
   */
  async mkdir(path: string, options?: { readonly recursive?: boolean; readonly mode?: number }): Promise<void> {
    const o = parse(MkdirOptions, options, 'mkdir options') ?? {};
    const { callerPath, resolved } = await this.#target(path);
    if (resolved.missing.length === 0) {
      if (o.recursive) {
        const dir = await this.#confinement.openDir(resolved.real, callerPath).catch((error: unknown) => {
          throw fsError(error, callerPath).code === 'NOT_A_DIRECTORY' ? pathError('PATH_EXISTS', callerPath) : error;
        });
        await dir.close();
        return;
      }
      throw pathError('PATH_EXISTS', callerPath);
    }
    if (resolved.missing.length > 1 && !o.recursive) throw pathError('PATH_NOT_FOUND', callerPath, 'the parent directory does not exist');
    const dir = await this.#makeDirs(resolved.existing, resolved.missing, callerPath, { mode: o.mode, lastMayExist: o.recursive === true });
    await dir.close();
  }

  /**
   * Creates a symbolic link at `path` to `target` (kept as given). Where the link leads —
   * `target` against the link's real directory, lexically — must be inside a root
   * (`PATH_OUTSIDE_ROOT`); it need not exist. The parent must exist; an entry at `path` fails
   * with `PATH_EXISTS`. Created through the verified parent directory, like every write.
   */
  async symlink(target: string, path: string): Promise<void> {
    if (typeof target !== 'string' || target === '' || target.length > 4096 || target.includes('\0')) {
      throw new TetherError('INVALID_ARGUMENT', 'a link target must be a non-empty string without NUL bytes (at most 4096 characters)');
    }
    const { callerPath, resolved } = await this.#target(path);
    if (resolved.missing.length === 0) throw pathError('PATH_EXISTS', callerPath);
    if (resolved.missing.length > 1) throw pathError('PATH_NOT_FOUND', callerPath, 'the parent directory does not exist');
    const linkDir = dirname(resolved.real);
    const leadsTo = isAbsolute(target) ? resolve(target) : resolve(linkDir, target);
    if (!this.#confinement.contains(leadsTo)) {
      throw pathError('PATH_OUTSIDE_ROOT', callerPath, 'path not allowed (the link would lead outside the allowed roots)', { target });
    }
    await this.#inDir(linkDir, callerPath, (dir) => symlink(target, dir.at(basename(resolved.real))));
  }

  /**
   * Removes a file, a symlink (itself, never its target), an empty directory, or with
   * `recursive` a whole tree (walked through directory descriptors, never following a symlink).
   * A non-empty directory without `recursive` fails with `DIRECTORY_NOT_EMPTY`; a root itself
   * cannot be removed (`PERMISSION_DENIED`).
   */
  async remove(path: string, options?: { readonly recursive?: boolean }): Promise<void> {
    const o = parse(RemoveOptions, options, 'remove options') ?? {};
    const entry = await this.#entry(path);
    if (entry.root !== undefined) throw pathError('PERMISSION_DENIED', entry.callerPath, 'a root cannot be removed');
    await this.#inDir(entry.parent, entry.callerPath, async (dir) => {
      const st = await lstat(dir.at(entry.name));
      if (!st.isDirectory()) return unlink(dir.at(entry.name));
      if (o.recursive) return this.#removeTree(dir, entry.name, entry.callerPath);
      try {
        await rmdir(dir.at(entry.name));
      } catch (error) {
        if (errnoOf(error) === 'EEXIST') throw pathError('DIRECTORY_NOT_EMPTY', entry.callerPath);
        throw error;
      }
    });
  }

  /**
   * Renames `from` to `to` (a symlink is moved itself). Both must be inside the roots. Without
   * `overwrite` (default false) an existing `to` fails with `PATH_EXISTS`; with it, a file is
   * replaced (a directory only by a directory, and only an empty one). Roots cannot be moved or
   * replaced; moves across filesystems fail with `INVALID_ARGUMENT` (`details.errno` EXDEV).
   */
  async move(from: string, to: string, options?: { readonly overwrite?: boolean }): Promise<void> {
    const o = parse(MoveOptions, options, 'move options') ?? {};
    const source = await this.#entry(from);
    if (source.root !== undefined) throw pathError('PERMISSION_DENIED', source.callerPath, 'a root cannot be moved');
    const target = await this.#entry(to);
    if (target.root !== undefined) throw pathError('PERMISSION_DENIED', target.callerPath, 'a root cannot be replaced');
    await this.#inDir(source.parent, source.callerPath, (fromDir) =>
      this.#inDir(target.parent, target.callerPath, async (toDir) => {
        await lstat(fromDir.at(source.name)).catch((error: unknown) => Promise.reject(fsError(error, source.callerPath)));
        if (!o.overwrite && (await exists(toDir.at(target.name)))) throw pathError('PATH_EXISTS', target.callerPath);
        await rename(fromDir.at(source.name), toDir.at(target.name)).catch((error: unknown) => Promise.reject(fsError(error, target.callerPath)));
      }),
    );
  }

  /** Aborts every open upload (removing the temp files) and stops the expiry timer. */
  async close(): Promise<void> {
    this.#stopSweeper();
    this.#committed.clear();
    await Promise.all([...this.#uploads].map(([id, upload]) => this.#discardUpload(id, upload)));
  }

  // -------------------------------------------------------------------------------------------

  /** Normalises and resolves `path` (following every symlink); it must end inside a root. */
  async #target(path: string) {
    const abs = this.#confinement.absolute(path);
    const callerPath = path;
    let resolved;
    try {
      resolved = await this.#confinement.resolve(abs);
    } catch (error) {
      throw fsError(error, callerPath);
    }
    if (!this.#confinement.contains(resolved.real)) throw pathError('PATH_OUTSIDE_ROOT', callerPath);
    return { abs, callerPath, resolved };
  }

  /**
   * The directory entry `path` names, a final symlink not followed: its parent's real path and
   * its name, or `root` when it is a root itself. The path must also resolve inside (a symlink
   * to the outside is refused even where only the link itself would be touched).
   */
  async #entry(path: string): Promise<{ callerPath: string; parent: string; name: string; root?: string }> {
    const { abs, callerPath, resolved } = await this.#target(path);
    const name = basename(abs);
    let parent;
    try {
      parent = await this.#confinement.resolve(dirname(abs));
    } catch (error) {
      throw fsError(error, callerPath);
    }
    if (parent.missing.length > 0) throw pathError('PATH_NOT_FOUND', callerPath);
    const entryReal = join(parent.real, name);
    if (name === '' || this.#confinement.isRoot(entryReal) || !this.#confinement.contains(parent.real)) {
      if (this.#confinement.isRoot(resolved.real) || this.#confinement.isRoot(entryReal)) {
        return { callerPath, parent: parent.real, name: name || '/', root: this.#confinement.isRoot(entryReal) ? entryReal : resolved.real };
      }
      throw pathError('PATH_OUTSIDE_ROOT', callerPath);
    }
    return { callerPath, parent: parent.real, name };
  }

  /** Runs `fn` with the verified directory at the real path `real`; maps errors for `callerPath`. */
  async #inDir<T>(real: string, callerPath: string, fn: (dir: DirHandle) => Promise<T>): Promise<T> {
    const dir = await this.#confinement.openDir(real, callerPath);
    try {
      return await fn(dir);
    } catch (error) {
      throw fsError(error, callerPath);
    } finally {
      await dir.close();
    }
  }

  /** Resolves and checks a write's target and opens its directory (creating parents with `mkdir`). */
  async #prepareWrite(path: string, o: NonNullable<z.output<typeof WriteOptions>>): Promise<Destination> {
    const { callerPath, resolved } = await this.#target(path);
    if (this.#confinement.isRoot(resolved.real)) throw pathError('NOT_A_FILE', callerPath);
    const name = basename(resolved.real);
    let dir: DirHandle;
    if (resolved.missing.length <= 1) {
      dir = await this.#confinement.openDir(dirname(resolved.real), callerPath);
    } else {
      if (!o.mkdir) throw pathError('PATH_NOT_FOUND', callerPath, 'the parent directory does not exist');
      dir = await this.#makeDirs(resolved.existing, resolved.missing.slice(0, -1), callerPath, { lastMayExist: true });
    }
    const overwrite = o.overwrite ?? true;
    try {
      let mode = o.mode ?? 0o644;
      let st: Stats | undefined;
      try {
        st = await lstat(dir.at(name));
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') throw error;
      }
      if (st) {
        if (!st.isFile() && !st.isSymbolicLink()) throw pathError('NOT_A_FILE', callerPath);
        if (!overwrite) throw pathError('PATH_EXISTS', callerPath);
        if (st.isFile() && o.mode === undefined) mode = st.mode & 0o7777;
      }
      const owner = st?.isFile() ? { uid: st.uid, gid: st.gid } : undefined;
      return { callerPath, dir, name, mode, overwrite, ...(owner ? { owner } : {}) };
    } catch (error) {
      await dir.close();
      throw fsError(error, callerPath);
    }
  }

  /** Creates a new temp file (O_EXCL, never through a symlink) beside the destination. */
  async #createTemp(dest: Destination): Promise<TempFile> {
    const name = `.tether-${randomBytes(8).toString('hex')}.tmp`;
    let file: FileHandle;
    try {
      file = await open(dest.dir.at(name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    } catch (error) {
      throw fsError(error, dest.callerPath);
    }
    const temp = { name, file };
    try {
      const { owner } = dest;
      if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        await file.chown(owner.uid, owner.gid).catch(() => undefined); // only root (or a group member) may
      }
      await file.chmod(dest.mode); // after chown, which may clear set-id bits
      await this.#confinement.verify(file, join(dest.dir.realPath, name), dest.callerPath);
    } catch (error) {
      await this.#discardTemp(dest, temp);
      throw fsError(error, dest.callerPath);
    }
    return temp;
  }

  /** fsync the temp file, re-verify the directory, rename (or link) it into place, fsync the directory. */
  async #install(dest: Destination, temp: TempFile): Promise<void> {
    const { dir, callerPath } = dest;
    try {
      await temp.file.sync();
      await temp.file.close();
      await this.#confinement.verify(dir.file, dir.realPath, callerPath);
      if (dest.overwrite) {
        await rename(dir.at(temp.name), dir.at(dest.name));
      } else {
        await this.#linkNoClobber(dest, temp);
      }
    } catch (error) {
      await this.#discardTemp(dest, temp);
      throw fsError(error, callerPath);
    }
    // The rename is done; a filesystem that cannot fsync a directory does not undo it.
    await dir.file.sync().catch(() => undefined);
  }

  async #linkNoClobber(dest: Destination, temp: TempFile): Promise<void> {
    const { dir, callerPath } = dest;
    try {
      await link(dir.at(temp.name), dir.at(dest.name));
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === 'EEXIST') throw pathError('PATH_EXISTS', callerPath);
      if (errno !== 'EPERM' && errno !== 'ENOTSUP' && errno !== 'EOPNOTSUPP' && errno !== 'ENOSYS') throw error;
      // No hard links on this filesystem: check, then rename (a racing creator may be replaced).
      if (await exists(dir.at(dest.name))) throw pathError('PATH_EXISTS', callerPath);
      await rename(dir.at(temp.name), dir.at(dest.name));
      return;
    }
    await unlink(dir.at(temp.name)).catch(() => undefined);
  }

  async #discardTemp(dest: Destination, temp: TempFile): Promise<void> {
    await temp.file.close().catch(() => undefined);
    await unlink(dest.dir.at(temp.name)).catch(() => undefined);
  }

  /**
   * Opens `names` under the existing real directory `existing`, creating each that is missing,
   * one verified descriptor at a time. The last may already exist only with `lastMayExist`.
   */
  async #makeDirs(
    existing: string,
    names: readonly string[],
    callerPath: string,
    options: { readonly mode?: number; readonly lastMayExist: boolean },
  ): Promise<DirHandle> {
    let dir = await this.#confinement.openDir(existing, callerPath);
    try {
      for (const [i, name] of names.entries()) {
        let created = false;
        try {
          await mkdir(dir.at(name), 0o777);
          created = true;
        } catch (error) {
          if (errnoOf(error) !== 'EEXIST' || (i === names.length - 1 && !options.lastMayExist)) throw error;
        }
        const child = await this.#confinement.openChildDir(dir, name, callerPath);
        await dir.close();
        dir = child;
        if (created && options.mode !== undefined) await child.file.chmod(options.mode);
      }
      return dir;
    } catch (error) {
      await dir.close();
      throw fsError(error, callerPath);
    }
  }

  /** Removes the directory `name` of `parent` and everything under it, never following a symlink. */
  async #removeTree(parent: DirHandle, name: string, callerPath: string): Promise<void> {
    let dir: DirHandle;
    try {
      dir = await this.#confinement.openChildDir(parent, name, callerPath);
    } catch (error) {
      // Replaced by a file or symlink since it was looked at: remove that entry itself.
      if (isTetherError(error, 'NOT_A_DIRECTORY') || isTetherError(error, 'PATH_NOT_FOUND')) {
        await unlink(parent.at(name)).catch((e: unknown) => (errnoOf(e) === 'ENOENT' ? undefined : Promise.reject(e)));
        return;
      }
      throw error;
    }
    try {
      for (const child of await readdir(dir.self)) {
        let st: Stats;
        try {
          st = await lstat(dir.at(child));
        } catch (error) {
          if (errnoOf(error) === 'ENOENT') continue;
          throw error;
        }
        if (st.isDirectory()) await this.#removeTree(dir, child, callerPath);
        else await unlink(dir.at(child)).catch((e: unknown) => (errnoOf(e) === 'ENOENT' ? undefined : Promise.reject(e)));
      }
    } finally {
      await dir.close();
    }
    await rmdir(parent.at(name));
  }

  #upload(uploadId: string): Upload {
    const upload = this.#uploads.get(uploadId);
    if (!upload) throw unknownUpload(uploadId);
    if (upload.expiresAt <= Date.now()) {
      void this.#discardUpload(uploadId, upload);
      throw unknownUpload(uploadId);
    }
    return upload;
  }

  #serial<T>(upload: Upload, fn: () => Promise<T>): Promise<T> {
    const run = upload.queue.then(fn, fn);
    upload.queue = run.catch(() => undefined);
    return run;
  }

  #discardUpload(uploadId: string, upload: Upload): Promise<void> {
    this.#uploads.delete(uploadId);
    return this.#serial(upload, async () => {
      if (upload.done) return;
      upload.done = true;
      await this.#discardTemp(upload.dest, upload.temp);
      await upload.dest.dir.close();
    });
  }

  #checkWriteSize(bytes: number): void {
    const limit = this.config.maxWriteBytes;
    if (bytes > limit) throw new TetherError('TOO_LARGE', `a write carries at most ${limit} bytes; upload in chunks`, { limit, size: bytes });
  }

  #startSweeper(): void {
    if (this.#sweeper) return;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(this.config.uploadTtlMs, 30_000));
    this.#sweeper.unref();
  }

  #stopSweeper(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [id, upload] of this.#uploads) if (upload.expiresAt <= now) void this.#discardUpload(id, upload);
    for (const [id, entry] of this.#committed) if (entry.expiresAt <= now) this.#committed.delete(id);
    if (this.#uploads.size === 0 && this.#committed.size === 0) this.#stopSweeper();
  }
}

function toFileStat(path: string, name: string, st: Stats, linkTarget?: string): FileStat {
  const stat: FileStat = { path, name, type: fileType(st), size: st.size, mode: st.mode & 0o7777, mtimeMs: Math.trunc(st.mtimeMs) };
  return linkTarget === undefined ? stat : { ...stat, linkTarget };
}

function fileType(st: Stats): FileType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isCharacterDevice()) return 'char-device';
  return 'unknown';
}

async function writeAll(file: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await file.write(data, done, data.byteLength - done, position + done);
    if (bytesWritten === 0) throw new TetherError('INTERNAL', 'the write made no progress');
    done += bytesWritten;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw error;
  }
}

function checkData(data: unknown): void {
  if (!(data instanceof Uint8Array)) throw new TetherError('INVALID_ARGUMENT', 'data must be a Uint8Array');
}

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid(what, parsed.error);
  return parsed.data;
}

function invalid(what: string, error: z.ZodError): TetherError {
  const issues = error.issues.map((i) => `${i.path.join('.') || '(value)'}: ${i.message}`).join('; ');
  return new TetherError('INVALID_ARGUMENT', `invalid ${what}: ${issues}`, { issues: error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) });
}

function unknownUpload(uploadId: string): TetherError {
  return new TetherError('INVALID_ARGUMENT', 'unknown or expired upload id', { uploadId });
}

