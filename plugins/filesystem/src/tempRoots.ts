import { readFileSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** A temp directory and whether it joins the default roots. */
export interface TempRoot {
  readonly dir: string;
  readonly included: boolean;
  /** Why it is left out (for the error a caller meets there). */
  readonly reason?: string;
}

export interface TempRootOptions {
  /**
   * Whether the kernel keeps other users' links and files in sticky world-writable directories
   * from being followed or opened (Linux `fs.protected_symlinks` and `fs.protected_regular`).
   * Default: read from /proc/sys/fs (false where it cannot be read).
   */
  readonly kernelProtectsStickyDirs?: boolean;
}

/**
 * `/tmp` and the system temp dir (`os.tmpdir()`, i.e. `$TMPDIR`), each with whether it is safe
 * as a default root. A directory other users cannot write to (a per-user `$TMPDIR`) is. A
 * world-writable one is shared: another user could plant a symlink there that leads into this
 * user's home, so it is included only when it is sticky and the kernel refuses to follow or
 * open what other users planted in such directories (`fs.protected_symlinks=1`,
 * `fs.protected_regular>=1`, the default of current Linux distributions).
 */
export function tempRoots(options: TempRootOptions = {}): TempRoot[] {
  const out: TempRoot[] = [];
  for (const candidate of new Set(['/tmp', tmpdir()])) {
    let dir: string;
    let mode: number;
    try {
      dir = realpathSync(candidate);
      const stat = statSync(dir);
      if (!stat.isDirectory()) continue;
      mode = stat.mode;
    } catch {
      continue;
    }
    if (out.some((t) => t.dir === dir)) continue;
    if ((mode & 0o002) === 0) {
      out.push({ dir, included: true });
    } else if ((mode & 0o1000) === 0) {
      out.push({ dir, included: false, reason: `${candidate} is world-writable without the sticky bit` });
    } else if (options.kernelProtectsStickyDirs ?? kernelProtects()) {
      out.push({ dir, included: true });
    } else {
      out.push({ dir, included: false, reason: `${candidate} is shared with other users and this kernel does not protect shared directories (fs.protected_symlinks / fs.protected_regular are off)` });
    }
  }
  return out;
}

function kernelProtects(): boolean {
  const read = (name: string) => {
    try {
      return Number(readFileSync(`/proc/sys/fs/${name}`, 'utf8').trim());
    } catch {
      return 0;
    }
  };
  return read('protected_symlinks') >= 1 && read('protected_regular') >= 1;
}
