// The codex-remote skills' steps against tether, over a real sshd: a `codex-remote` shim that
// execs tether, the orchestrator's chain (check → up when daemon_ok is false → start → poll the
// result → logs) on an SSH machine whose daemon is stopped, the environment training scripts
// expect (sh -lc, PYTHONUNBUFFERED=1), and peers on the daemon port that are not tether.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopTunnel } from '@tether/transport-ssh';
import { USER, freePort, keygen, knownHostsLine, startSshd, type Sshd } from '../../transport-ssh/test/support.js';
import { BIN, cliEnv, eventually, runCli, type CliEnv } from './support.js';

let cli: CliEnv;
let sshd: Sshd;
let remoteHome: string;
let boxData: string;
let shimDir: string;
const servers: Array<Server | HttpServer> = [];
const MACHINES = ['box', 'codexd', 'httpd', 'garbage', 'reset'];

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const pidIn = (file: string) => {
  const pid = Number(existsSync(file) ? readFileSync(file, 'utf8').trim() : NaN);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
};
async function stop(pid: number | undefined): Promise<void> {
  if (pid === undefined || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  await eventually(() => (alive(pid) ? undefined : true), 15_000, `pid ${pid} exits`);
}
const upPid = () => pidIn(join(remoteHome, '.local', 'state', 'tether', 'daemon-up.pid'));

const peerSockets = new Set<{ destroy(): void }>();
/** Listens on a free loopback port; resolves with the port. */
function listen(server: Server | HttpServer): Promise<number> {
  servers.push(server);
  server.on('connection', (socket) => {
    peerSockets.add(socket);
    socket.once('close', () => peerSockets.delete(socket));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** Runs a bash script with the shim first on PATH, as an agent's shell runs the skill. */
function bash(script: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'skill', ...args], { cwd: cli.home, env: { ...cli.env, PATH: `${shimDir}:${process.env['PATH']}` } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The orchestrator skill's chain, written from its steps: check; when daemon_ok is false, up and
 * check again; start; poll the result until finished; print the stdout tail. Under `set -e`, as
 * the skill runs it: any step exiting non-zero aborts the chain.
 */
const CHAIN = `set -euo pipefail
machine="$1"; cmd="$2"
check="$(codex-remote machine check --machine "$machine")"
echo "check: $check"
if echo "$check" | grep -Eq '"daemon_ok"[[:space:]]*:[[:space:]]*false'; then
  echo "up: $(codex-remote machine up --machine "$machine")"
  echo "recheck: $(codex-remote machine check --machine "$machine")"
fi
start="$(codex-remote exec start --machine "$machine" --cmd "$cmd")"
echo "start: $start"
id="$(printf '%s' "$start" | sed -E 's/.*"exec_id":"([^"]+)".*/\\1/')"
while :; do
  result="$(codex-remote exec result --machine "$machine" --id "$id")"
  if echo "$result" | grep -Eq '"status"[[:space:]]*:[[:space:]]*"finished"'; then break; fi
  sleep 0.2
done
echo "result: $result"
codex-remote exec logs --machine "$machine" --id "$id" --stream stdout --tail 2000
`;

beforeAll(async () => {
  cli = cliEnv('tether-cli-skills-');
  // Python's own buffering is what the tests look at: nothing of the caller's may leak in.
  delete cli.env['PYTHONUNBUFFERED'];
  delete cli.env['SSH_AUTH_SOCK'];
  remoteHome = join(cli.root, 'remote-home');
  mkdirSync(join(remoteHome, 'tools'), { recursive: true });
  // What a training box's ~/.profile does: put tools on the PATH (read by login shells only).
  writeFileSync(join(remoteHome, '.profile'), `PATH="$HOME/tools:$PATH"\nexport PATH\n`);
  writeFileSync(join(remoteHome, 'tools', 'mytool'), '#!/bin/sh\necho "mytool ran"\n');
  chmodSync(join(remoteHome, 'tools', 'mytool'), 0o755);
  const ssh = join(cli.home, '.ssh');
  mkdirSync(ssh, { mode: 0o700 });
  const key = await keygen(join(ssh, 'id_ed25519'));
  sshd = await startSshd(join(cli.root, 'sshd'), [key], [`SetEnv HOME=${remoteHome} PATH=/usr/bin:/bin`]);
  writeFileSync(join(ssh, 'known_hosts'), `${knownHostsLine(sshd)}\n`);
  writeFileSync(join(ssh, 'config'), ['Host box', '  HostName 127.0.0.1', `  Port ${sshd.port}`, `  User ${USER}`, '  IdentityFile ~/.ssh/id_ed25519', ''].join('\n'));

  // Peers that are not tether, each on the port a machine calls its daemon's.
  const codexd = await listen(
    createHttpServer((req, res) => {
      // codexd's health answer; anything else is Go's ServeMux 404.
      if (req.method === 'GET' && req.url === '/health') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true, version: 'v0.3.1', time: new Date().toISOString(), go: 'go1.22.5' }));
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
    }),
  );
  const httpd = await listen(createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>')));
  const garbage = await listen(createServer((socket) => socket.on('error', () => undefined).end(Buffer.from([0, 1, 2, 0xff, 10, 13, 0x80]))));
  const reset = await listen(createServer((socket) => socket.on('error', () => undefined).resetAndDestroy()));

  boxData = join(cli.root, 'box-daemon');
  const boxPort = await freePort();
  // A token file as a tether daemon leaves it: the other peers are reached with it (a user who migrates has one).
  const tokenFile = join(cli.root, 'stray-token');
  writeFileSync(tokenFile, 'a'.repeat(43), { mode: 0o600 });
  cli.writeConfig(`machines:
  - name: box
    ssh: box
    daemon_port: ${boxPort}
    token_file: ${boxData}/token
    daemon_cmd: ${process.execPath} ${BIN} daemon serve --data-dir ${boxData}
  - { name: codexd, ssh: box, daemon_port: ${codexd}, token_file: ${tokenFile} }
  - { name: httpd, ssh: box, daemon_port: ${httpd}, token_file: ${tokenFile} }
  - { name: garbage, ssh: box, daemon_port: ${garbage}, token_file: ${tokenFile} }
  - { name: reset, ssh: box, daemon_port: ${reset}, token_file: ${tokenFile} }
`);
  shimDir = join(cli.root, 'shim');
  mkdirSync(shimDir);
  // The drop-in: a binary named codex-remote that is tether.
  writeFileSync(join(shimDir, 'codex-remote'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`);
  chmodSync(join(shimDir, 'codex-remote'), 0o755);
});

afterAll(async () => {
  await Promise.all(MACHINES.map((name) => stopTunnel(name, { stateDir: cli.stateDir }).catch(() => undefined)));
  await Promise.all([upPid(), pidIn(join(boxData, 'daemon.pid'))].map((pid) => stop(pid).catch(() => undefined)));
  for (const socket of peerSockets) socket.destroy();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await sshd?.stop();
  await cli?.cleanup();
});

describe('the orchestrator chain through a codex-remote shim', () => {
  it('on an SSH machine whose daemon is stopped: check (exit 0, daemon_ok false) → up → start → result → logs', async () => {
    expect(pidIn(join(boxData, 'daemon.pid'))).toBeUndefined();
    const chain = await bash(CHAIN, ['box', 'echo "hello from $(hostname)"; echo done']);
    expect(chain.code, chain.stdout + chain.stderr).toBe(0);
    const out = chain.stdout.split('\n');
    expect(JSON.parse(out.find((l) => l.startsWith('check: '))!.slice(7))).toMatchObject({ name: 'box', ssh_ok: true, daemon_ok: false });
    expect(JSON.parse(out.find((l) => l.startsWith('up: '))!.slice(4))).toMatchObject({ ok: true, stage: 'verify', phase: 'verify' });
    expect(JSON.parse(out.find((l) => l.startsWith('recheck: '))!.slice(9))).toMatchObject({ daemon_ok: true });
    expect(JSON.parse(out.find((l) => l.startsWith('result: '))!.slice(8))).toMatchObject({ status: 'finished', exit_code: 0 });
    const logs = out.filter((l) => l.startsWith('{"type":"log"')).map((l) => JSON.parse(l).line);
    expect(logs).toEqual([expect.stringMatching(/^hello from \S+/), 'done']);
  });

  it('on local (nothing to start): the same chain ends with the result', async () => {
    const chain = await bash(CHAIN, ['local', 'echo local; exit 0']);
    expect(chain.code, chain.stdout + chain.stderr).toBe(0);
    expect(chain.stdout).not.toMatch(/^up: /m);
    expect(chain.stdout.split('\n').filter((l) => l.startsWith('{"type":"log"')).map((l) => JSON.parse(l).line)).toEqual(['local']);
  });
});

describe('the environment remote commands get (as codexd gives it)', () => {
  it('a login shell: ~/.profile puts tools on the PATH; --no-login-shell does not', async () => {
    const run = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'mytool']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['mytool ran']);
    const plain = await cli.run(['exec', 'run', '--machine', 'box', '--no-login-shell', '--cmd', 'mytool']);
    expect(plain.code).toBe(127);
    expect(plain.lines().at(-1)).toMatchObject({ type: 'finished', exit_code: 127, error: 'exit status 127' });
  });

  it('PYTHONUNBUFFERED=1: a Python progress line arrives while the script still runs', async () => {
    const start = await cli.run(['exec', 'start', '--machine', 'box', '--cmd', `python3 -c 'import os, time; print("step 1", os.environ.get("PYTHONUNBUFFERED")); time.sleep(60)'`]);
    const id = start.json()['exec_id'] as string;
    const watch = await cli.run(['exec', 'watch', '--machine', 'box', '--id', id, '--full', '--until-pattern', '^step 1']);
    const lines = watch.lines();
    expect(lines[0]).toMatchObject({ type: 'log', line: 'step 1 1' });
    expect(lines.at(-1)).toMatchObject({ type: 'summary', status: 'running' });
    await cli.run(['exec', 'cancel', '--machine', 'box', '--id', id, '--grace', '500ms']);
  });

  it('--script runs the uploaded file by its path, so its #! line picks the interpreter', async () => {
    const script = join(cli.root, 'train.py');
    writeFileSync(script, '#!/usr/bin/env python3\nimport sys\nprint("python", sys.version_info[0])\nsys.exit(3)\n');
    const run = await cli.run(['exec', 'run', '--machine', 'box', '--script', script]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['python 3']);
  });
});

describe('sync over SSH', () => {
  it("push DIR (rsync's rule: the directory itself) with its inner symlinks as symlinks, next to what was there", async () => {
    const src = join(cli.root, 'proj');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'sub', 'data.txt'), 'data');
    symlinkSync('sub/data.txt', join(src, 'latest'));
    mkdirSync(join(remoteHome, 'work'));
    writeFileSync(join(remoteHome, 'work', 'keep.txt'), 'keep');
    const push = await cli.run(['sync', 'push', '--machine', 'box', '--src', src, '--dst', '~/work', '--delete']);
    expect(push.code, push.stderr).toBe(0);
    expect(push.json()).toMatchObject({ ok: true, files: 1, deleted: 0, links: 1 });
    expect(readFileSync(join(remoteHome, 'work', 'keep.txt'), 'utf8')).toBe('keep');
    expect(readFileSync(join(remoteHome, 'work', 'proj', 'sub', 'data.txt'), 'utf8')).toBe('data');
    expect(readlinkSync(join(remoteHome, 'work', 'proj', 'latest'))).toBe('sub/data.txt');
  });
});

describe('a daemon port served by something that is not tether', () => {
  it.each([
    ['codexd', /served by codexd, not tether/],
    ['httpd', /not a tether daemon/],
    ['garbage', /not a tether daemon/],
    ['reset', /reset|not a tether daemon/],
  ])('%s: machine check reports it (exit 0), exec start and machine list give the JSON error with a hint', async (name, hint) => {
    const check = await cli.run(['machine', 'check', '--machine', name, '--timeout', '5s']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.json()).toMatchObject({ name, ssh_ok: true, daemon_ok: false, error: expect.any(String), hint: expect.stringMatching(hint) });

    const start = await runCli(['exec', 'start', '--machine', name, '--cmd', 'true'], { cwd: cli.home, env: cli.env });
    expect([start.code, start.stdout]).toEqual([6, '']);
    expect(start.error()).toMatchObject({ code: 'CONNECTION_LOST', hint: expect.stringMatching(hint) });
  });

  it('machine list still prints every machine', async () => {
    const list = await cli.run(['machine', 'list', '--timeout', '5s']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.json()['machines'].map((m: { name: string }) => m.name)).toEqual(['local', ...MACHINES]);
  });
});
