// `tether daemon serve` in the foreground (its Unix socket and a TCP address at once, a pid file,
// a graceful stop), and `tether daemon bridge` piping bytes to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cliEnv, type CliEnv } from './support.js';

let cli: CliEnv;
let serve: ChildProcess;
let ready: { ok: boolean; pid: number; data_dir: string; socket: string; urls: string[]; token_file: string };
let stderr = '';

beforeAll(async () => {
  cli = cliEnv('tether-cli-serve-');
  serve = spawn(process.execPath, [BIN, 'daemon', 'serve', '--data-dir', join(cli.root, 'srv'), '--listen', '127.0.0.1:0'], { env: cli.env, stdio: ['ignore', 'pipe', 'pipe'] });
  serve.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  ready = await new Promise((resolve, reject) => {
    let out = '';
    serve.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
    });
    serve.once('exit', (code) => reject(new Error(`daemon serve exited with ${code}: ${stderr}`)));
  });
});
afterAll(async () => {
  if (serve.exitCode === null) serve.kill('SIGKILL');
  await cli.cleanup();
});

describe('daemon serve', () => {
  it('says where it serves once it does: its Unix socket (0600) and the TCP address', () => {
    const dir = join(cli.root, 'srv');
    expect(ready).toEqual({
      ok: true,
      pid: serve.pid,
      data_dir: dir,
      socket: join(dir, 'daemon.sock'),
      urls: [`unix:${join(dir, 'daemon.sock')}`, expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/)],
      token_file: join(dir, 'token'),
    });
    expect(statSync(ready.socket).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'daemon.pid'), 'utf8').trim()).toBe(String(serve.pid));
    // Logs are JSON lines on stderr.
    expect(stderr.split('\n').filter(Boolean).every((line) => JSON.parse(line).level)).toBe(true);
  });

  it('serves clients on TCP with the token, and daemon status on its socket', async () => {
    cli.writeConfig(`machines:\n  - { name: served, addr: "${ready.urls[1]}", token_file: "${ready.token_file}" }\n`);
    const run = await cli.run(['exec', 'run', '--machine', 'served', '--cmd', 'echo over tcp']);
    expect(run.lines().find((l) => l['type'] === 'log')?.['line']).toBe('over tcp');
    const status = await cli.run(['daemon', 'status', '--data-dir', ready.data_dir]);
    expect(status.json()).toMatchObject({ running: true, pid: serve.pid, data_dir: ready.data_dir });
  });

  it('daemon bridge pipes bytes to the listener, both ways', async () => {
    // A plain HTTP request through the bridge: the daemon answers that it wants a WebSocket.
    const bridged = await cli.run(['daemon', 'bridge', '--socket', ready.socket], { input: 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' });
    expect(bridged.code).toBe(0);
    expect(bridged.stdout).toMatch(/^HTTP\/1\.1 426 /);
    expect(bridged.stdout).toMatch(/this is a tether daemon/);
    const tcp = await cli.run(['daemon', 'bridge', '--connect', ready.urls[1]!.slice('ws://'.length)], { input: 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' });
    expect(tcp.stdout).toMatch(/^HTTP\/1\.1 426 /);
    const refused = await cli.run(['daemon', 'bridge', '--socket', join(cli.root, 'nothing.sock')], { input: '' });
    expect([refused.code, refused.stdout, refused.error().message]).toEqual([6, '', expect.stringMatching(/connection refused/)]);
  });

  it('stops gracefully on SIGTERM and removes its socket and pid file', async () => {
    const exited = new Promise<number | null>((resolve) => serve.once('exit', resolve));
    serve.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(ready.socket)).toBe(false);
    expect(existsSync(join(ready.data_dir, 'daemon.pid'))).toBe(false);
    expect(stderr).toMatch(/"msg":"stopped"/);
  });

  it('a second daemon on the same data dir refuses to start (STORE_LOCKED, exit 11)', async () => {
    const first = await cli.run(['exec', 'run', '--cmd', 'true']); // the local daemon now holds the state dir
    expect(first.code).toBe(0);
    const second = await cli.run(['daemon', 'serve', '--data-dir', cli.stateDir, '--listen', 'none']);
    expect([second.code, second.stdout]).toEqual([11, '']);
    expect(second.error()).toMatchObject({ code: 'STORE_LOCKED', message: expect.stringMatching(/already running/) });
  });
});
