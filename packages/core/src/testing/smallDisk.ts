import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A small tmpfs of its own, for disk-full tests (`mountSmallDisk`). */
export interface SmallDisk {
  /** The mount point (empty at first). */
  readonly dir: string;
  /** Fills the disk's free space with a file, up to `leaveBytes` left free (default none). */
  fill(leaveBytes?: number): Promise<void>;
  /** Removes the file `fill` wrote. */
  free(): Promise<void>;
  /** Unmounts and removes the mount point (everything on it is gone). */
  unmount(): Promise<void>;
}

/**
 * Mounts a tmpfs of `sizeMiB` on a new temp dir (`mount -t tmpfs -o size=…`). Where mounting is
 * not allowed (not root, no CAP_SYS_ADMIN, a container without it), returns the reason instead,
 * for a test to skip with.
 */
export async function mountSmallDisk(sizeMiB = 8): Promise<SmallDisk | { readonly skip: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tether-small-disk-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir]);
  } catch (error) {
    await rmdir(dir).catch(() => undefined);
    const why = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    return { skip: `cannot mount a ${sizeMiB} MiB tmpfs here (${why}); disk-full tests need root or CAP_SYS_ADMIN` };
  }
  const filler = join(dir, 'filler');
  const limit = sizeMiB * 1024 * 1024;
  let mounted = true;
  return {
    dir,
    async fill(leaveBytes = 0) {
      // Never fill anything but this small disk (not the disk under an unmounted mount point).
      if (!mounted) throw new Error(`the small disk at ${dir} is unmounted`);
      const { stdout } = await run('df', ['-B1', '--output=size,avail', dir]);
      const [size, avail] = stdout.trim().split('\n').at(-1)!.trim().split(/\s+/).map(Number);
      if (!(size! <= limit)) throw new Error(`${dir} is not the ${sizeMiB} MiB tmpfs (df says ${size} bytes)`);
      let room = Math.min(avail!, limit) - leaveBytes;
      const file = await open(filler, 'a');
      const block = Buffer.alloc(64 * 1024, 0x5a);
      try {
        while (room > 0) {
          const n = Math.min(room, block.byteLength);
          await file.write(block, 0, n);
          room -= n;
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        await file.close();
      }
    },
    async free() {
      await rm(filler, { force: true });
    },
    async unmount() {
      if (!mounted) return;
      mounted = false;
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      await rmdir(dir).catch(() => undefined);
    },
  };
}
