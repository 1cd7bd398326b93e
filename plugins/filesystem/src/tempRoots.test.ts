import { mkdtempSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { LocalFileSystemBackend } from './localFileSystemBackend.js';
import { tempRoots } from './tempRoots.js';

const sharedTmp = (statSync('/tmp').mode & 0o1002) === 0o1002;
const made: string[] = [];
const tmp = (parent: string) => {
  const dir = mkdtempSync(join(parent, 'tether-roots-'));
  made.push(dir);
  return dir;
};
const savedTmpdir = process.env['TMPDIR'];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  if (savedTmpdir === undefined) delete process.env['TMPDIR'];
  else process.env['TMPDIR'] = savedTmpdir;
});

describe('temp dirs as default roots', () => {
  it.runIf(sharedTmp)('a shared sticky /tmp is a root only where the kernel protects such directories', () => {
    expect(tempRoots({ kernelProtectsStickyDirs: true }).find((t) => t.dir === '/tmp')).toEqual({ dir: '/tmp', included: true });
    const left = tempRoots({ kernelProtectsStickyDirs: false }).find((t) => t.dir === '/tmp');
    expect(left).toMatchObject({ included: false, reason: expect.stringMatching(/shared with other users.*protected_symlinks/) });
  });

  it('a private TMPDIR (mode 0700) is a root whatever the kernel does', () => {
    const mine = tmp(homedir());
    process.env['TMPDIR'] = mine;
    expect(tempRoots({ kernelProtectsStickyDirs: false }).find((t) => t.dir === mine)).toEqual({ dir: mine, included: true });
    const fs = new LocalFileSystemBackend({}, { kernelProtectsStickyDirs: false });
    expect(fs.roots).toContain(mine);
  });

  it.runIf(sharedTmp)('the backend: /tmp served when protected; otherwise "path not allowed" with why', async () => {
    const dir = tmp('/tmp');
    const open = new LocalFileSystemBackend({}, { kernelProtectsStickyDirs: true });
    await open.write(join(dir, 'a.txt'), new TextEncoder().encode('a'));
    const closed = new LocalFileSystemBackend({}, { kernelProtectsStickyDirs: false });
    const error = await closed.write(join(dir, 'b.txt'), new TextEncoder().encode('b')).catch((e: unknown) => e);
    expect(isTetherError(error, 'PATH_OUTSIDE_ROOT')).toBe(true);
    expect((error as Error).message).toMatch(/^path not allowed/);
    expect((error as { details: Record<string, unknown> }).details).toMatchObject({ leftOut: '/tmp', reason: expect.any(String) });
    // Configured roots are taken as given: no temp dir is added to them.
    expect(new LocalFileSystemBackend({ roots: [dir] }, { kernelProtectsStickyDirs: true }).roots).toEqual([dir]);
  });
});

describe('symlink', () => {
  it('creates links that stay inside the roots; refuses ones leading out, and existing entries', async () => {
    const root = tmp(homedir());
    const fs = new LocalFileSystemBackend({ roots: [root] });
    await fs.write(join(root, 'a.txt'), new TextEncoder().encode('a'));
    await fs.mkdir(join(root, 'sub'));
    await fs.symlink('../a.txt', join(root, 'sub', 'up'));
    expect(readlinkSync(join(root, 'sub', 'up'))).toBe('../a.txt');
    expect(await fs.stat(join(root, 'sub', 'up'))).toMatchObject({ type: 'symlink', linkTarget: '../a.txt' });
    for (const target of ['/etc/passwd', '../../../../../../etc/passwd']) {
      const error = await fs.symlink(target, join(root, 'sub', 'bad')).catch((e: unknown) => e);
      expect(isTetherError(error, 'PATH_OUTSIDE_ROOT'), String(target)).toBe(true);
    }
    expect(isTetherError(await fs.symlink('a.txt', join(root, 'sub', 'up')).catch((e: unknown) => e), 'PATH_EXISTS')).toBe(true);
    expect(isTetherError(await fs.symlink('a.txt', join(root, 'no', 'such', 'x')).catch((e: unknown) => e), 'PATH_NOT_FOUND')).toBe(true);
  });
});
