import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { processesOf } from '@tether/core/testing';
import { connectWs, readToken, remoteMachine, startDaemon } from './index.js';
import { backends, eventually, removeTempDirs, tempDir, upgradeStatus } from '../test/support.js';

afterAll(removeTempDirs);

const codeOf = (error: unknown) => (isTetherError(error) ? error.code : String(error));

describe('startDaemon', () => {
  it('creates the data dir and a 0600 token file, and serves with that token only', async () => {
    const dataDir = join(await tempDir(), 'state', 'tether');
    const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: backends(await tempDir()) });
    try {
      expect(daemon.tokenFile).toBe(join(dataDir, 'token'));
      expect((await stat(daemon.tokenFile!)).mode & 0o777).toBe(0o600);
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
      expect(daemon.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
      const machine = remoteMachine(daemon.url, { token: await readToken(daemon.tokenFile!) });
      expect((await machine.info()).backends).toEqual({ process: true, filesystem: true, gpu: true });
      await machine.close();
    } finally {
      await daemon.close();
    }
  });

  it('makes an existing 0755 data dir private (0700) with events/ and its LevelDB files, and gives commands the user\'s umask', async () => {
    const files = async (dir: string) => {
      const found: Array<{ path: string; mode: number }> = [];
      for (const name of await readdir(dir, { recursive: true })) {
        const path = join(dir, String(name));
        found.push({ path, mode: (await lstat(path)).mode & 0o777 });
      }
      return found;
    };
    const previousUmask = process.umask(0o022);
    try {
      const dataDir = join(await tempDir(), 'shared-box');
      await mkdir(dataDir, { mode: 0o755 });
      await chmod(dataDir, 0o755);
      // A store left world-readable (as a daemon without this fix made it), then a new daemon.
      const first = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] });
      await first.close();
      // (The token file is left 0600: a readable one is refused on its own, see the next test.)
      await chmod(dataDir, 0o755);
      await chmod(join(dataDir, 'events'), 0o755);
      for (const { path } of await files(join(dataDir, 'events'))) if ((await lstat(path)).isFile()) await chmod(path, 0o644);
      expect((await stat(dataDir)).mode & 0o777).toBe(0o755);

      const logs: string[] = [];
      const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: backends(await tempDir()), log: (e) => logs.push(e.msg) });
      try {
        expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
        expect(logs).toContain('the data dir was readable by others: made private (0700)');
        const machine = remoteMachine(daemon.url, { token: await readToken(daemon.tokenFile!) });
        // Enough output for LevelDB to write new files while the daemon runs.
        const started = await machine.exec.start({ command: 'head -c 3000000 /dev/zero | tr "\\0" x; echo; umask' });
        await machine.exec.wait(started.id);
        const { lines } = await machine.exec.logs(started.id, { tailLines: 1 });
        await machine.close();
        expect(lines[0]?.line).toBe('0022'); // the command's umask is the user's, not the daemon's 077
        const open = (await files(dataDir)).filter(({ mode }) => (mode & 0o077) !== 0);
        expect(open).toEqual([]);
      } finally {
        await daemon.close();
      }
      expect(process.umask()).toBe(0o022); // close() put the embedding process's umask back
    } finally {
      process.umask(previousUmask);
    }
  });

  it('refuses a token file readable by group or others, and releases the store', async () => {
    const dataDir = await tempDir();
    const tokenFile = join(dataDir, 'token');
    await writeFile(tokenFile, `${'c'.repeat(64)}\n`);
    await chmod(tokenFile, 0o644);
    const error = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] }).catch((e: unknown) => e);
    expect(codeOf(error)).toBe('PERMISSION_DENIED');
    expect((error as Error).message).toContain('chmod 600');
    await chmod(tokenFile, 0o600);
    const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] });
    await daemon.close();
  });

  it('fails with STORE_LOCKED while another daemon runs on the data dir', async () => {
    const dataDir = await tempDir();
    const first = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] });
    try {
      const error = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] }).catch((e: unknown) => e);
      expect(codeOf(error)).toBe('STORE_LOCKED');
      expect((error as Error).message).toMatch(/another daemon is already running with the data dir/);
    } finally {
      await first.close();
    }
  });

  it('over maxConnections lets a new authenticated client in and closes the quietest connection (1013); an unauthenticated one takes no room', async () => {
    const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: await tempDir(), plugins: [], maxConnections: 1 });
    try {
      const token = await readToken(daemon.tokenFile!);
      const first = await connectWs(daemon.url, { token });
      let firstEnded = false;
      const firstGone = new Promise<unknown>((resolve) =>
        first.messages$.subscribe({ complete: () => resolve('complete'), error: (e: unknown) => resolve(e) }),
      ).finally(() => (firstEnded = true));
      expect(await upgradeStatus(daemon.url, { Authorization: 'Bearer wrong' })).toBe(401);
      expect(await upgradeStatus(daemon.url, {})).toBe(401);
      expect(firstEnded).toBe(false);
      const second = await connectWs(daemon.url, { token });
      const ended = await firstGone;
      expect(isTetherError(ended) ? ended.details['closeCode'] : ended).toBe(1013);
      second.close();
    } finally {
      await daemon.close();
    }
  });

  it('fails clearly when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await startDaemon({ listen: `127.0.0.1:${port}`, dataDir: await tempDir(), plugins: [] }).catch((e: unknown) => e);
      expect(codeOf(error)).toBe('INVALID_ARGUMENT');
      expect((error as Error).message).toMatch(/address already in use/);
    } finally {
      blocker.close();
    }
  });

  it('listens on a Unix socket with mode 0600, replaces a stale one, refuses a live one', async () => {
    const dir = await tempDir();
    const path = join(dir, 'daemon.sock');
    // A stale socket file, as a killed daemon leaves it.
    const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
    expect(() => execFileSync(process.execPath, ['-e', script], { stdio: 'ignore' })).toThrow();
    expect((await lstat(path)).isSocket()).toBe(true);

    const daemon = await startDaemon({ listen: path, dataDir: join(dir, 'a'), plugins: backends(dir) });
    try {
      expect(daemon.url).toBe(`unix:${path}`);
      expect((await lstat(path)).mode & 0o777).toBe(0o600);
      const token = await readToken(daemon.tokenFile!);
      const machine = remoteMachine(path, { token });
      const run = await machine.exec.start({ argv: ['echo', 'over a socket'] });
      expect((await machine.exec.wait(run.id)).exitCode).toBe(0);
      await machine.close();
      expect(codeOf(await connectWs(path, { token: 'wrong-token-0123456789' }).catch((e: unknown) => e))).toBe('UNAUTHORIZED');

      const second = await startDaemon({ listen: path, dataDir: join(dir, 'b'), plugins: [] }).catch((e: unknown) => e);
      expect((second as Error).message).toMatch(/address already in use: a daemon is listening/);
    } finally {
      await daemon.close();
    }
    await expect(lstat(path)).rejects.toThrow(/ENOENT/);

    const file = join(dir, 'not-a-socket');
    await writeFile(file, 'keep me');
    expect((await startDaemon({ listen: file, dataDir: join(dir, 'c'), plugins: [] }).catch((e: unknown) => e)) as Error).toHaveProperty(
      'message',
      expect.stringMatching(/exists and is not a socket/),
    );
    expect(await readFile(file, 'utf8')).toBe('keep me');
  });

  it('close() stops accepting, drops clients and cancels running executions (recorded as cancelled)', async () => {
    const dataDir = await tempDir();
    const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: backends(dataDir) });
    const token = await readToken(daemon.tokenFile!);
    const machine = remoteMachine(daemon.url, { token, reconnect: { giveUpAfterMs: 300 } });
    const run = await machine.exec.start({ argv: ['sleep', '30'] });
    await eventually(() => processesOf(run.id).length > 0);
    await daemon.close();
    expect(processesOf(run.id)).toEqual([]);
    expect(codeOf(await machine.health().catch((e: unknown) => e))).toBe('CONNECTION_LOST');
    await machine.close();

    const again = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] });
    try {
      const state = await again.kernel.machine('local').exec.get(run.id);
      expect(state).toMatchObject({ status: 'finished', endReason: 'cancelled' });
    } finally {
      await again.close();
    }
  });
});

const openssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!openssl)('wss://', () => {
  it('serves TLS with a given certificate; a client trusting it connects, one that does not is refused', async () => {
    const dir = await tempDir();
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { stdio: 'ignore' },
    );
    const daemon = await startDaemon({
      listen: '127.0.0.1:0',
      dataDir: join(dir, 'd'),
      plugins: backends(dir),
      tls: { certFile: cert, keyFile: key },
      handshakeTimeoutMs: 200,
    });
    try {
      expect(daemon.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
      const token = await readToken(daemon.tokenFile!);
      const machine = remoteMachine(daemon.url, { token, ca: await readFile(cert) });
      const run = await machine.exec.start({ argv: ['echo', 'encrypted'] });
      await machine.exec.wait(run.id);
      expect((await machine.exec.logs(run.id)).lines.map((l) => l.line)).toEqual(['encrypted']);
      // Past the handshake deadline, the upgraded connection is still the same one.
      await machine.exec.wait((await machine.exec.start({ argv: ['sleep', '0.5'] })).id);
      expect(machine.connections).toBe(1);
      await machine.close();

      const untrusted = await connectWs(daemon.url, { token }).catch((e: unknown) => e);
      expect(codeOf(untrusted)).toBe('UNAUTHORIZED');
      expect((untrusted as Error).message).toMatch(/certificate/);
      // Plain ws:// to a TLS port gets nowhere.
      expect(await upgradeStatus(daemon.url.replace('wss:', 'ws:'), { Authorization: `Bearer ${token}` }).catch(() => 'failed')).not.toBe(101);
    } finally {
      await daemon.close();
    }
  });
});
