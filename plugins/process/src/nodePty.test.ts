// The PTY library installs without a compiler (a prebuilt binary, no node-gyp build), and the
// private fields the PTY workarounds rely on are still there.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadNodePty } from './nodePty.js';

const require = createRequire(import.meta.url);
const root = join(dirname(require.resolve('@lydell/node-pty/package.json')), '..', '..');
/** Native builds that may fail without breaking anything: ssh2's own crypto binding and cpu-features are optional. */
const OPTIONAL_BUILDS = new Set(['ssh2/lib/protocol/crypto', 'cpu-features']);

/** Directories under node_modules with a binding.gyp (a node-gyp project), relative to node_modules. */
function gypProjects(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === '.bin' || name === '.cache') continue;
    const path = join(dir, name);
    if (!statSync(path).isDirectory()) continue;
    if (existsSync(join(path, 'binding.gyp'))) out.push(relative(root, path));
    gypProjects(path, out);
  }
  return out;
}

describe('the PTY library', () => {
  it('is the prebuilt distribution: its binary comes from the platform package, nothing was compiled for it', () => {
    const pty = loadNodePty();
    expect(typeof pty.spawn).toBe('function');
    const binaryPackage = `@lydell/node-pty-${process.platform}-${process.arch}`;
    const binary = require.resolve(`${binaryPackage}/pty.node`);
    expect(statSync(binary).size).toBeGreaterThan(0);
    expect(existsSync(join(root, 'node-pty'))).toBe(false);
    expect(existsSync(join(root, '@lydell', 'node-pty', 'build'))).toBe(false);
    expect(existsSync(join(dirname(binary), 'build'))).toBe(false);
  });

  it('no required native module was built by node-gyp during the install (only optional ones may be)', () => {
    const built = gypProjects(root).filter((p) => existsSync(join(root, p, 'build')));
    expect(built.filter((p) => !OPTIONAL_BUILDS.has(p))).toEqual([]);
  });

  it('still has the private fd and _socket the PTY workarounds use', async () => {
    const term = loadNodePty().spawn('/bin/sh', ['-c', 'exit 0'], { cols: 80, rows: 24, cwd: '/', env: { PATH: '/usr/bin:/bin' }, encoding: null });
    const internals = term as unknown as { fd?: unknown; _socket?: unknown };
    expect(typeof internals.fd).toBe('number');
    expect(internals._socket).toBeInstanceOf(Readable);
    await new Promise<void>((resolve) => term.onExit(() => resolve()));
  });
});
