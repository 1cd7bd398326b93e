// `machine up` reads the token of the daemon it started, whatever that daemon's environment: a
// real sshd whose sessions get XDG_STATE_HOME / XDG_CONFIG_HOME through SetEnv, and daemon_cmds
// that background themselves (`nohup … &`) with their own output file and environment.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopTunnel } from '@tether/transport-ssh';
import { USER, freePort, keygen, knownHostsLine, startSshd, type Sshd } from '../../transport-ssh/test/support.js';
import { BIN, alive, cliEnv, eventually, pidIn, type CliEnv } from './support.js';

let cli: CliEnv;
let sshd: Sshd;
/** The remote login's HOME and XDG state directory (sshd sets them with SetEnv). */
let remoteHome: string;
let remoteState: string;
/** Data dirs of the daemons started here (each writes daemon.pid), stopped at the end. */
const dataDirs: string[] = [];
const MACHINES = ['xdg', 'ownenv', 'cleared'];


beforeAll(async () => {
  cli = cliEnv('tether-cli-up-token-');
  remoteHome = join(cli.root, 'remote-home');
  remoteState = join(cli.root, 'remote-xdg-state');
  mkdirSync(remoteHome);
  const ssh = join(cli.home, '.ssh');
  mkdirSync(ssh, { mode: 0o700 });
  const key = await keygen(join(ssh, 'id_ed25519'));
  sshd = await startSshd(join(cli.root, 'sshd'), [key], [
    `SetEnv HOME=${remoteHome} PATH=/usr/bin:/bin XDG_STATE_HOME=${remoteState} XDG_CONFIG_HOME=${join(cli.root, 'remote-xdg-config')}`,
  ]);
  writeFileSync(join(ssh, 'known_hosts'), `${knownHostsLine(sshd)}\n`);
  writeFileSync(join(ssh, 'config'), ['Host box', '  HostName 127.0.0.1', `  Port ${sshd.port}`, `  User ${USER}`, '  IdentityFile ~/.ssh/id_ed25519', ''].join('\n'));
  // What clients used to read whatever the daemon's environment: a token of some older daemon.
  mkdirSync(join(remoteHome, '.local', 'state', 'tether'), { recursive: true });
  writeFileSync(join(remoteHome, '.local', 'state', 'tether', 'token'), 'stale-token-of-another-daemon-0123456789\n', { mode: 0o600 });

  const serve = (port: number, log: string) => `nohup ${process.execPath} ${BIN} daemon serve --listen 127.0.0.1:${port} >${join(cli.root, log)} 2>&1 &`;
  const ports = { xdg: await freePort(), ownenv: await freePort(), cleared: await freePort() };
  const ownState = join(cli.root, 'own-state');
  const clearedState = join(cli.root, 'cleared-state');
  dataDirs.push(join(remoteState, 'tether'), join(ownState, 'tether'), join(clearedState, 'tether'));
  cli.writeConfig(`machines:
  - name: xdg
    ssh: box
    daemon_port: ${ports.xdg}
    daemon_cmd: ${serve(ports.xdg, 'xdg.log')}
  - name: ownenv
    ssh: box
    daemon_port: ${ports.ownenv}
    daemon_cmd: XDG_STATE_HOME=${ownState} ${serve(ports.ownenv, 'ownenv.log')}
  - name: cleared
    ssh: box
    daemon_port: ${ports.cleared}
    daemon_cmd: env -i HOME=${remoteHome} XDG_STATE_HOME=${clearedState} ${serve(ports.cleared, 'cleared.log')}
`);
  delete cli.env['SSH_AUTH_SOCK'];
});

afterAll(async () => {
  await Promise.all(MACHINES.map((name) => stopTunnel(name, { stateDir: cli.stateDir }).catch(() => undefined)));
  for (const dir of dataDirs) {
    const pid = pidIn(join(dir, 'daemon.pid'));
    if (pid === undefined || !alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    await eventually(() => (alive(pid) ? undefined : true), 15_000, `daemon ${pid} exits`);
  }
  await sshd?.stop();
  await cli?.cleanup();
});

describe('machine up with a daemon_cmd that backgrounds itself', () => {
  it('the login sets XDG_STATE_HOME: the token of the started daemon is read, not ~/.local/state/tether/token', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'xdg']);
    expect(up.stderr).toBe('');
    expect(up.json()).toMatchObject({ ok: true, phase: 'verify', after: { daemon_ok: true } });
    expect(up.code).toBe(0);
    // The daemon recorded its token file where the login's clients look.
    const record = readFileSync(join(remoteState, 'tether', 'daemon-port-' + /daemon_port: (\d+)/.exec(readFileSync(cli.configFile, 'utf8'))![1]), 'utf8').split('\n');
    expect(record[1]).toBe(join(remoteState, 'tether', 'token'));
    const run = await cli.run(['exec', 'run', '--machine', 'xdg', '--cmd', 'echo "$XDG_STATE_HOME"']);
    expect(run.code).toBe(0);
    expect(run.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual([remoteState]);
  });

  it('the daemon_cmd sets its own XDG_STATE_HOME: the daemon records its token file where the login looks', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'ownenv']);
    expect(up.json()).toMatchObject({ ok: true, phase: 'verify', after: { daemon_ok: true } });
    const check = await cli.run(['machine', 'check', '--machine', 'ownenv']);
    expect(check.json()).toMatchObject({ daemon_ok: true, ssh_ok: true });
  });

  it('a daemon that cannot tell its token file: unauthorized, and the hint names the files compared', async () => {
    const up = await cli.run(['machine', 'up', '--machine', 'cleared', '--timeout', '60s']);
    const json = up.json();
    expect(json).toMatchObject({ ok: false, phase: 'verify', after: { daemon_ok: false } });
    expect(json['message']).toMatch(new RegExp(`^unauthorized: .*refused the token read from ${join(remoteState, 'tether', 'token')}`));
    expect(json['hint']).toMatch(/^compared the token in .*\/remote-xdg-state\/tether\/token with the daemon's: no running daemon recorded its token file in .*daemon-port-\d+/);
    expect(json['hint']).toMatch(/set token_file of cleared/);
    expect(up.code).toBe(7);
    expect(up.error().code).toBe('UNAUTHORIZED');
  });
});
