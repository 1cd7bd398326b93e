// Machines reached over SSH: a real OpenSSH sshd on loopback (this same host plays the remote,
// with its own HOME and a short PATH), the CLI as child processes with their own ~/.ssh (config,
// key, known_hosts), remote daemons started by `machine up`, persistent tunnels, an ssh-agent.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopTunnel } from '@tether/transport-ssh';
import { connectWs } from '@tether/transport-ws';
import { USER, freePort, keygen, knownHostsLine, startAgent, startSshd, type Agent, type Sshd } from '../../transport-ssh/test/support.js';
import { BIN, RFC3339, alive, cliEnv, eventually, pidIn, type CliEnv } from './support.js';

let cli: CliEnv;
let sshd: Sshd;
let agent: Agent | undefined;
let keyFile: string;
/** The remote user's home (sshd sets it for every session). */
let remoteHome: string;
let boxData: string;
let sharedData: string;
let boxPort: number;
let sharedPort: number;
let socketOnly: ChildProcess | undefined;
/** Processes started on the "remote" by `machine up`, stopped at the end. */
const remotePids = new Set<number>();
const MACHINES = ['box', 'shared', 'bare', 'stranger', 'broken'];

/** The pid `machine up` wrote for what it started last. */
const upPid = () => pidIn(join(remoteHome, '.local', 'state', 'tether', 'daemon-up.pid'));
const rememberUpPid = () => {
  const pid = upPid();
  if (pid !== undefined) remotePids.add(pid);
};
async function stop(pid: number | undefined): Promise<void> {
  if (pid === undefined || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  await eventually(() => (alive(pid) ? undefined : true), 15_000, `pid ${pid} exits`);
}

function sha256Tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        out[`${relative(root, path)}/`] = 'dir';
        walk(path);
      } else out[relative(root, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(root);
  return out;
}

const tunnelLines = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{"tunnel":'))
    .map((l) => JSON.parse(l).tunnel as { machine: string; reused?: boolean; pid?: number; fallback?: string });

beforeAll(async () => {
  cli = cliEnv('tether-cli-ssh-');
  remoteHome = join(cli.root, 'remote-home');
  mkdirSync(remoteHome);
  const ssh = join(cli.home, '.ssh');
  mkdirSync(ssh, { mode: 0o700 });
  keyFile = join(ssh, 'id_ed25519');
  const key = await keygen(keyFile);
  // The remote side: its own home, and the short PATH of a non-interactive session (no tether there).
  sshd = await startSshd(join(cli.root, 'sshd'), [key], [`SetEnv HOME=${remoteHome} PATH=/usr/bin:/bin`]);
  writeFileSync(join(ssh, 'known_hosts'), `${knownHostsLine(sshd)}\n`);
  writeFileSync(
    join(ssh, 'config'),
    [
      'Host box',
      '  HostName 127.0.0.1',
      `  Port ${sshd.port}`,
      `  User ${USER}`,
      '  IdentityFile ~/.ssh/id_ed25519',
      'Host stranger',
      '  HostName 127.0.0.1',
      `  Port ${sshd.port}`,
      `  User ${USER}`,
      '  IdentityFile ~/.ssh/id_ed25519',
      '  UserKnownHostsFile ~/.ssh/known_hosts_empty',
      '',
    ].join('\n'),
  );
  boxData = join(cli.root, 'box-daemon');
  // Where a CLI run with XDG_STATE_HOME=<root>/shared-state keeps its local daemon.
  sharedData = join(cli.root, 'shared-state', 'tether');
  boxPort = await freePort();
  sharedPort = await freePort();
  const serve = (data: string) => `${process.execPath} ${BIN} daemon serve --data-dir ${data}`;
  cli.writeConfig(`machines:
  - name: box
    ssh: box
    daemon_port: ${boxPort}
    token_file: ${boxData}/token
    daemon_cmd: ${serve(boxData)}
  - name: shared
    ssh: box
    daemon_port: ${sharedPort}
    token_file: ${sharedData}/token
    daemon_cmd: ${serve(sharedData)} --listen 127.0.0.1:${sharedPort}
  - name: bare
    ssh: box
    daemon_port: ${await freePort()}
  - name: stranger
    ssh: stranger
    daemon_port: ${boxPort}
  - name: broken
    ssh: box
    daemon_port: ${await freePort()}
    daemon_cmd: ${serve(join(cli.root, 'broken-daemon'))} --config ${join(cli.root, 'no-such-config.yaml')}
`);
  // An ssh-agent in the caller's environment only where a test asks for one.
  delete cli.env['SSH_AUTH_SOCK'];
});

afterAll(async () => {
  await Promise.all(MACHINES.map((name) => stopTunnel(name, { stateDir: cli.stateDir }).catch(() => undefined)));
  socketOnly?.kill('SIGTERM');
  await Promise.all([...remotePids, pidIn(join(boxData, 'daemon.pid'))].map((pid) => stop(pid).catch(() => undefined)));
  await agent?.stop();
  await sshd?.stop();
  await cli?.cleanup();
});

describe('machine up', () => {
  it('starts the daemon over SSH and waits until it answers; a second call is a no-op', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'box']);
    rememberUpPid();
    expect(up.code, up.stderr).toBe(0);
    const result = up.json();
    expect(result).toMatchObject({
      ok: true,
      phase: 'verify',
      message: expect.stringMatching(/started the daemon on box/),
      before: { name: 'box', transport: 'ssh', ssh_ok: true, daemon_ok: false },
      after: { name: 'box', transport: 'ssh', ssh_ok: true, daemon_ok: true, daemon_version: '0.1.0', checked_at: expect.stringMatching(RFC3339) },
    });
    // The default listen address was added: the daemon serves the machine's daemon_port.
    expect(readFileSync(join(remoteHome, '.local', 'state', 'tether', 'daemon-up.log'), 'utf8')).toContain(`127.0.0.1:${boxPort}`);
    const pid = pidIn(join(boxData, 'daemon.pid'));
    expect(pid).toBeDefined();

    const again = await cli.run(['machine', 'up', '--machine', 'box']);
    expect(again.code).toBe(0);
    expect(again.json()).toMatchObject({ ok: true, phase: 'precheck', message: expect.stringMatching(/already running/), before: { daemon_ok: true } });
    expect(pidIn(join(boxData, 'daemon.pid'))).toBe(pid);
  });

  it('names a PATH without tether (phase start, exit 127)', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'bare']);
    expect(up.code).toBe(127);
    expect(up.json()).toMatchObject({
      ok: false,
      phase: 'start',
      message: expect.stringMatching(/`tether` is not on the PATH of non-interactive SSH sessions on bare \(\/usr\/bin:\/bin\)/),
      hint: expect.stringMatching(/daemon_cmd/),
      before: { ssh_ok: true, daemon_ok: false },
    });
    expect(up.error()).toMatchObject({ code: 'SPAWN_FAILED' });
  });

  it('a daemon that exits with an error: phase verify, its error and where its output is', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'broken']);
    expect(up.code).toBe(3);
    expect(up.json()).toMatchObject({
      ok: false,
      phase: 'verify',
      message: expect.stringMatching(/the daemon started on broken exited: .*no-such-config\.yaml/),
      hint: expect.stringContaining(join(remoteHome, '.local', 'state', 'tether', 'daemon-up.log')),
      before: { ssh_ok: true, daemon_ok: false },
      after: { ssh_ok: true, daemon_ok: false },
    });
    expect(up.error()).toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('an unknown host key: phase precheck, the command that trusts it as the hint, exit 7', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'stranger']);
    expect(up.code).toBe(7);
    const scan = `ssh-keyscan -p ${sshd.port} 127.0.0.1 >>`;
    expect(up.json()).toMatchObject({ ok: false, phase: 'precheck', hint: expect.stringContaining(scan), before: { ssh_ok: false, daemon_ok: false } });
    expect(up.error()).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/unauthorized: .*host key .* is not known/), hint: expect.stringContaining(scan) });

    const run = await cli.run(['exec', 'run', '--machine', 'stranger', '--cmd', 'true']);
    expect([run.code, run.stdout]).toEqual([7, '']);
    expect(run.error()).toMatchObject({ code: 'UNAUTHORIZED', hint: expect.stringContaining(scan) });
  });
});

describe('calls through the daemon', () => {
  it('machine check and list: ssh_ok from the SSH login, daemon_ok from health', async () => {
    const check = await cli.run(['machine', 'check', '--machine', 'box']);
    expect(check.code).toBe(0);
    expect(check.json()).toEqual({
      name: 'box',
      transport: 'ssh',
      ssh_ok: true,
      daemon_ok: true,
      latency_ms: expect.any(Number),
      checked_at: expect.stringMatching(RFC3339),
      daemon_version: '0.1.0',
      daemon_port: boxPort,
    });
    const bare = await cli.run(['machine', 'check', '--machine', 'bare']);
    expect(bare.code).toBe(0);
    expect(bare.json()).toMatchObject({ name: 'bare', ssh_ok: true, daemon_ok: false, error: expect.stringMatching(/connection refused/) });

    const list = (await cli.run(['machine', 'list'])).json();
    expect(list['machines'].map((m: { name: string; ssh_ok: boolean | null; daemon_ok: boolean }) => [m.name, m.ssh_ok, m.daemon_ok])).toEqual([
      ['local', null, true],
      ['box', true, true],
      ['shared', true, false],
      ['bare', true, false],
      ['stranger', false, false],
      ['broken', true, false],
    ]);
    expect(list).toMatchObject({ total: 6, ssh_ok: 4, daemon_ok: 2, failed: 4 });
  });

  it('exec run goes through a persistent tunnel, which the next call reuses (--verbose says so)', async () => {
    const first = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'echo hi from $HOME', '--verbose']);
    expect(first.code, first.stderr).toBe(0);
    const lines = first.lines();
    expect(lines.filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual([`hi from ${remoteHome}`]);
    expect(lines.at(-1)).toMatchObject({ type: 'finished', end_reason: 'exited', exit_code: 0 });
    const [t1] = tunnelLines(first.stderr);
    expect(t1).toMatchObject({ machine: 'box', pid: expect.any(Number) });

    const second = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'echo again', '--verbose']);
    expect(second.code).toBe(0);
    const [t2] = tunnelLines(second.stderr);
    expect(t2).toMatchObject({ machine: 'box', reused: true, pid: t1!.pid });
    expect(alive(t1!.pid!)).toBe(true);
    // Without --verbose, nothing but errors on stderr.
    const quiet = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'true']);
    expect([quiet.code, quiet.stderr]).toEqual([0, '']);
  });

  it('falls back to a direct SSH connection when the tunnel cannot start', async () => {
    // A state directory so deep that the tunnel's socket path would exceed what Unix sockets allow.
    const deep = join(cli.root, 'x'.repeat(100));
    const run = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'echo direct', '--verbose'], { env: { XDG_STATE_HOME: deep } });
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['direct']);
    expect(tunnelLines(run.stderr)).toEqual([expect.objectContaining({ machine: 'box', fallback: 'direct', code: 'INVALID_ARGUMENT' })]);
  });

  it('a stopped daemon: check says the machine answers SSH but not the daemon; machine up starts it again', async () => {
    await stop(pidIn(join(boxData, 'daemon.pid')));
    const check = await cli.run(['machine', 'check', '--machine', 'box']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.json()).toMatchObject({ ssh_ok: true, daemon_ok: false, error: expect.stringMatching(/connection refused/) });

    const up = await cli.run(['machine', 'up', '--machine', 'box']);
    rememberUpPid();
    expect(up.code, up.stderr).toBe(0);
    expect(up.json()).toMatchObject({ ok: true, phase: 'verify', before: { ssh_ok: true, daemon_ok: false }, after: { daemon_ok: true } });
    const run = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'echo back']);
    expect(run.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['back']);
  });
});

describe('machine ssh', () => {
  it('runs a command with the ssh-agent forwarded', async () => {
    mkdirSync(join(cli.root, 'agent'));
    agent = await startAgent(join(cli.root, 'agent'));
    await agent.add(keyFile);
    const result = await cli.run(['machine', 'ssh', '--machine', 'box', '--cmd', 'echo "sock=$SSH_AUTH_SOCK"; ssh-add -l'], { env: { SSH_AUTH_SOCK: agent.socket } });
    expect(result.code, result.stderr).toBe(0);
    const json = result.json();
    expect(json).toEqual({ ok: true, ssh: 'box', forward_agent: true, tty: false, stdout: expect.any(String), stderr: '', code: 0 });
    const [sock, keys] = (json['stdout'] as string).split('\n');
    expect(sock).toMatch(/^sock=\/.+/);
    expect(sock).not.toBe(`sock=${agent.socket}`);
    expect(keys).toMatch(/ED25519/);
  });

  it('without an agent nothing is forwarded; the exit code is the command\'s', async () => {
    const result = await cli.run(['machine', 'ssh', '--machine', 'box', '--cmd', 'echo "sock=$SSH_AUTH_SOCK"; echo oops >&2; exit 3']);
    expect(result.code, result.stdout + result.stderr).toBe(3);
    expect(result.json()).toEqual({ ok: false, ssh: 'box', forward_agent: false, tty: false, stdout: 'sock=\n', stderr: 'oops\n', code: 3 });
    const tty = await cli.run(['machine', 'ssh', '--machine', 'box', '--tty', '--cmd', 'test -t 0 && echo terminal']);
    expect(tty.json()).toMatchObject({ ok: true, tty: true, stdout: 'terminal\r\n' });
  });
});

describe('sync', () => {
  it('push and pull round trip, every file byte for byte; excludes, no-op, --delete', async () => {
    const src = join(cli.root, 'project');
    mkdirSync(join(src, 'sub', 'deep'), { recursive: true });
    mkdirSync(join(src, 'empty'));
    writeFileSync(join(src, 'a.txt'), 'alpha\n');
    writeFileSync(join(src, 'sub', 'b.bin'), randomBytes(300_000));
    writeFileSync(join(src, 'sub', 'deep', 'c.txt'), 'gamma\n', { mode: 0o600 });
    writeFileSync(join(src, 'big.bin'), randomBytes(5 * 1024 * 1024 + 7)); // more than one 4 MiB chunk
    writeFileSync(join(src, 'debug.log'), 'not sent\n');
    const expected = sha256Tree(src);
    delete expected['debug.log'];
    const bytes = 6 + 300_000 + 6 + 5 * 1024 * 1024 + 7;

    const push = await cli.run(['sync', 'push', '--machine', 'box', '--src', `${src}/`, '--dst', '~/synced', '--exclude', '*.log']);
    expect(push.code, push.stderr).toBe(0);
    expect(push.json()).toEqual({ ok: true, mode: 'push', machine: 'box', src: `${src}/`, dst: '~/synced', delete: false, exclude: ['*.log'], files: 4, bytes, deleted: 0, links: 0, skipped: [] });
    expect(push.stderr).toBe(''); // no progress bar: stderr is not a terminal
    expect(sha256Tree(join(remoteHome, 'synced'))).toEqual(expected);
    expect(statSync(join(remoteHome, 'synced', 'sub', 'deep', 'c.txt')).mode & 0o777).toBe(0o600);

    const pulled = join(cli.root, 'pulled', 'copy');
    const pull = await cli.run(['sync', 'pull', '--machine', 'box', '--src', '~/synced/', '--dst', pulled]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.json()).toEqual({ ok: true, mode: 'pull', machine: 'box', src: '~/synced/', dst: pulled, delete: false, exclude: [], files: 4, bytes, deleted: 0, links: 0, skipped: [] });
    expect(sha256Tree(pulled)).toEqual(expected);

    const again = await cli.run(['sync', 'push', '--machine', 'box', '--src', `${src}/`, '--dst', '~/synced', '--exclude', '*.log']);
    expect(again.json()).toMatchObject({ ok: true, files: 0, bytes: 0, deleted: 0 });

    rmSync(join(src, 'a.txt'));
    writeFileSync(join(src, 'sub', 'b.bin'), 'changed\n');
    const mirror = await cli.run(['sync', 'push', '--machine', 'box', '--src', `${src}/`, '--dst', '~/synced', '--exclude', '*.log', '--delete']);
    expect(mirror.json()).toMatchObject({ ok: true, files: 1, bytes: 8, deleted: 1 });
    const now = sha256Tree(src);
    delete now['debug.log'];
    expect(sha256Tree(join(remoteHome, 'synced'))).toEqual(now);
  });

  it('a missing source is an error', async () => {
    const push = await cli.run(['sync', 'push', '--machine', 'box', '--src', join(cli.root, 'nothing'), '--dst', '~/x']);
    expect([push.code, push.stdout]).toEqual([9, '']);
    expect(push.error()).toMatchObject({ code: 'PATH_NOT_FOUND' });
    const pull = await cli.run(['sync', 'pull', '--machine', 'box', '--src', '~/nothing', '--dst', join(cli.root, 'x')]);
    expect([pull.code, pull.stdout]).toEqual([9, '']);
    expect(pull.error()).toMatchObject({ code: 'PATH_NOT_FOUND' });
  });
});

describe('a daemon started for "local" on the machine (Unix socket only)', () => {
  it('machine up serves it on the TCP port instead of failing on the store lock', async () => {
    socketOnly = spawn(process.execPath, [BIN, 'daemon', 'serve', '--listen', 'none', '--data-dir', sharedData], {
      env: { ...cli.env, HOME: remoteHome },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let said = '';
    socketOnly.stdout!.on('data', (chunk: Buffer) => (said += chunk.toString()));
    await eventually(() => (said.includes('\n') ? true : undefined), 20_000, 'the socket-only daemon serves');

    const up = await cli.run(['machine', 'up', '--machine', 'shared']);
    const attachedPid = upPid();
    rememberUpPid();
    expect(up.code, up.stderr).toBe(0);
    expect(up.json()).toMatchObject({ ok: true, phase: 'verify', before: { daemon_ok: false }, after: { daemon_ok: true } });
    const log = readFileSync(join(remoteHome, '.local', 'state', 'tether', 'daemon-up.log'), 'utf8');
    expect(log).toContain(`"attached_to":${socketOnly.pid}`);
    // The port checks what the daemon itself checks: a wrong token is refused.
    await expect(connectWs(`127.0.0.1:${sharedPort}`, { token: 'f'.repeat(64) })).rejects.toMatchObject({ code: 'UNAUTHORIZED' });

    // Executions run in the socket-only daemon: the local CLI on that machine sees them.
    const run = await cli.run(['exec', 'run', '--machine', 'shared', '--cmd', 'echo shared']);
    expect(run.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['shared']);
    const id = run.lines()[0]!['exec_id'] as string;
    const there = await cli.run(['exec', 'result', '--id', id], { env: { XDG_STATE_HOME: join(sharedData, '..') } });
    expect(there.json()).toMatchObject({ exec_id: id, machine: 'local', status: 'finished', exit_code: 0 });

    // When that daemon stops, the process serving its port goes too.
    socketOnly.kill('SIGTERM');
    await eventually(() => (attachedPid !== undefined && !alive(attachedPid) ? true : undefined), 15_000, 'the attached listener exits');
  });
});

describe('tether dashboard with an ssh machine', () => {
  it('serves box over one SSH connection, reused by every request', async () => {
    const count = (what: string) => sshd.log().split('\n').filter((l) => l.includes(what)).length;
    const logins = () => count('Accepted publickey');
    const channels = () => count('server_request_direct_tcpip');
    const dashboard = spawn(process.execPath, [BIN, 'dashboard', '--listen', '127.0.0.1:0'], { env: cli.env, stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      let said = '';
      dashboard.stdout!.on('data', (chunk: Buffer) => (said += chunk.toString()));
      await eventually(() => (said.includes('\n') ? true : undefined), 20_000, 'the dashboard serves');
      const { url, origin } = JSON.parse(said.split('\n')[0]!) as { url: string; origin: string };
      const login = await fetch(url, { redirect: 'manual' });
      expect(login.status).toBe(303);
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      const get = async (path: string) => {
        const answer = await fetch(`${origin}${path}`, { headers: { cookie } });
        expect(answer.status, path).toBe(200);
        return (await answer.json()) as Record<string, any>;
      };

      const before = logins();
      const channelsBefore = channels();
      for (let i = 0; i < 3; i++) {
        expect(await get('/api/machines/box/status')).toMatchObject({ name: 'box', transport: 'ssh', ssh_ok: true, daemon_ok: true, daemon_version: '0.1.0' });
      }
      const started = await fetch(`${origin}/api/machines/box/executions`, {
        method: 'POST',
        headers: { cookie, origin, 'content-type': 'application/json' },
        body: JSON.stringify({ command: 'echo over-ssh' }),
      });
      expect(started.status).toBe(200);
      const { id } = (await started.json()) as { id: string };
      await eventually(async () => ((await get(`/api/machines/box/executions/${id}`))['row'].status === 'finished' ? true : undefined), 20_000, 'the execution finishes');
      expect((await get(`/api/machines/box/executions/${id}/tail`))['lines']).toEqual([{ s: 'stdout', q: expect.any(Number), t: 'over-ssh' }]);
      const listed = await get('/api/executions?machine=box&limit=5');
      expect(listed['items'][0]).toMatchObject({ machine: 'box', id });
      // Eight requests to box: one connection to its daemon (one forwarded channel), reused, and
      // at most one SSH login (none when the CLI's persistent tunnel to box is already up).
      expect(channels() - channelsBefore).toBe(1);
      expect(logins() - before).toBeLessThanOrEqual(1);
    } finally {
      const exited = new Promise((resolve) => dashboard.once('exit', resolve));
      dashboard.kill('SIGTERM');
      await exited;
    }
  });
});
