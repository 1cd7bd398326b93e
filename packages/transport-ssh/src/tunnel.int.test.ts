// The persistent local tunnel end to end: a real sshd, a real daemon, tunnel processes started
// from dist/tunnelMain.js, and clients in this process and in new Node processes.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, RemoteMachine, type MachineConfig } from '@tether/core';
import { rejection } from '@tether/core/testing';
import { readToken, startDaemon, type Daemon } from '@tether/transport-ws';
import sshPlugin, { connectViaTunnel, readTunnelState, stopTunnel, tunnelConfigHash, tunnelFiles, type ConnectViaTunnelOptions, type TunnelTelemetry } from './index.js';
import { isAlive, isTunnelProcess } from './tunnelFiles.js';
import { BRIDGE_MAIN, backends, eventually, freePort, keygen, knownHostsLine, removeTempDirs, startSshd, tempDir, type Sshd, USER } from '../test/support.js';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
let dir: string;
let stateDir: string;
let ssh: { home: string; systemConfigFile: null; agent: null };
let key: string;
let sshd: Sshd;
let daemon: Daemon;
let daemonPort: number;
const machines: RemoteMachine[] = [];
const used = new Set<string>();

beforeAll(async () => {
  dir = await tempDir('tether-tun-');
  stateDir = join(dir, 'state');
  const home = join(dir, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true });
  key = await keygen(join(home, '.ssh', 'id_ed25519'));
  sshd = await startSshd(join(dir, 'sshd'), [key]);
  await writeFile(join(home, '.ssh', 'known_hosts'), `${knownHostsLine(sshd)}\n`);
  ssh = { home, systemConfigFile: null, agent: null };
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(dir, 'daemon'), tokenFile: join(dir, 'daemon-token'), plugins: backends(await tempDir('tether-tun-work-')) });
  daemonPort = (daemon.address as { port: number }).port;
});

afterAll(async () => {
  await Promise.all(machines.map((m) => m.close()));
  await Promise.all([...used].map((name) => stopTunnel(name, { stateDir }).catch(() => undefined)));
  await daemon?.close();
  await sshd?.stop();
  await removeTempDirs();
});

function machineConfig(name: string, extra: Record<string, unknown> = {}, port = sshd.port): MachineConfig {
  used.add(name);
  return { name, transport: 'ssh', ssh: `${USER}@127.0.0.1:${port}`, daemon_port: daemonPort, token_file: daemon.tokenFile!, ...extra };
}

function tunnelOptions(extra: Partial<ConnectViaTunnelOptions> = {}): ConnectViaTunnelOptions {
  return { stateDir, ssh, ...extra };
}

/** A RemoteMachine whose every connection goes through the tunnel; the telemetry of each connect is collected. */
function viaTunnel(config: MachineConfig, extra: Partial<ConnectViaTunnelOptions> = {}): { machine: RemoteMachine; telemetry: TunnelTelemetry[] } {
  const telemetry: TunnelTelemetry[] = [];
  const machine = new RemoteMachine({
    name: config.name,
    connect: (signal) => connectViaTunnel(config, tunnelOptions({ ...extra, signal, onTelemetry: (t) => telemetry.push(t) })),
    reconnect: { initialDelayMs: 20, maxDelayMs: 200, giveUpAfterMs: 10_000 },
  });
  machines.push(machine);
  return { machine, telemetry };
}

async function echo(machine: RemoteMachine, text: string): Promise<string> {
  const run = await machine.exec.start({ argv: ['echo', text] });
  expect(await machine.exec.wait(run.id)).toMatchObject({ status: 'finished', exitCode: 0 });
  return (await machine.exec.logs(run.id, { tailLines: 10 })).lines.map((l) => l.line).join('\n');
}

const logins = () => sshd.log().split('Accepted publickey').length - 1;
const mode = async (path: string) => (await stat(path)).mode & 0o777;

/** Runs a new Node process that connects through the tunnel (verbose) and calls `daemon/health`; resolves with its telemetry line. */
function clientProcess(config: MachineConfig, extra: Record<string, unknown> = {}): Promise<{ telemetry: TunnelTelemetry; health: { ok: boolean } }> {
  const script = `
    import { RemoteMachine } from '@tether/core';
    import { connectViaTunnel } from '@tether/transport-ssh';
    const { machine, options } = JSON.parse(process.argv[1]);
    const remote = new RemoteMachine({ name: machine.name, connect: (signal) => connectViaTunnel(machine, { ...options, verbose: true, signal }), reconnect: { giveUpAfterMs: 0 } });
    const health = await remote.health();
    await remote.close();
    process.stdout.write(JSON.stringify({ health }) + '\\n');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify({ machine: config, options: { stateDir, ssh, ...extra } })], {
    cwd: PACKAGE_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`client exited with ${code}: ${stderr}`));
      const lines = stderr.trim().split('\n').filter((l) => l.startsWith('{"tunnel"'));
      if (lines.length !== 1) return reject(new Error(`expected one telemetry line on stderr, got: ${stderr}`));
      resolve({ telemetry: JSON.parse(lines[0]!).tunnel, health: JSON.parse(stdout).health });
    });
  });
}

describe('the persistent tunnel', () => {
  it('is started by the first call as a separate process, with private files', async () => {
    const config = machineConfig('box');
    const files = tunnelFiles(stateDir, 'box');
    const { machine, telemetry } = viaTunnel(config);
    expect(await echo(machine, 'through-the-tunnel')).toBe('through-the-tunnel');

    const state = (await readTunnelState(files))!;
    expect(state).toMatchObject({ machine: 'box', socket: files.socket, status: 'ready', route: 'forward', tokenFile: files.token });
    expect(state.configHash).toBe(tunnelConfigHash(config, ssh));
    expect(state.pid).not.toBe(process.pid);
    expect(await isTunnelProcess(state.pid, stateDir)).toBe(true);
    expect(telemetry).toEqual([expect.objectContaining({ machine: 'box', reused: false, pid: state.pid, spawn_ms: expect.any(Number) })]);

    expect(await mode(files.dir)).toBe(0o700);
    expect((await stat(files.socket)).isSocket()).toBe(true);
    expect(await mode(files.socket)).toBe(0o600);
    expect(await mode(files.state)).toBe(0o600);
    expect(await mode(files.token)).toBe(0o600);
    expect(await readToken(files.token)).toBe(await readToken(daemon.tokenFile!));
  });

  it('is reused by a call from a new process: same pid, no new SSH login', async () => {
    const config = machineConfig('box');
    const { pid } = (await readTunnelState(tunnelFiles(stateDir, 'box')))!;
    const before = logins();
    const second = await clientProcess(config);
    const third = await clientProcess(config);
    expect(second.health.ok).toBe(true);
    expect(second.telemetry).toMatchObject({ machine: 'box', reused: true, pid });
    expect(second.telemetry.spawn_ms).toBeUndefined();
    expect(third.telemetry).toMatchObject({ reused: true, pid });
    expect(logins()).toBe(before);
  });

  it('replaces a stale state file whose process is dead', async () => {
    const config = machineConfig('box');
    const files = tunnelFiles(stateDir, 'box');
    const old = (await readTunnelState(files))!;
    process.kill(old.pid, 'SIGKILL');
    await eventually(() => !isAlive(old.pid), 10_000, 'tunnel killed');
    // Killed, it could not clean up: its state file and socket are still there.
    expect((await readTunnelState(files))?.pid).toBe(old.pid);
    expect(existsSync(files.socket)).toBe(true);

    const { telemetry, health } = await clientProcess(config);
    expect(health.ok).toBe(true);
    expect(telemetry.reused).toBe(false);
    expect(telemetry.pid).not.toBe(old.pid);
    expect((await readTunnelState(files))?.pid).toBe(telemetry.pid);
  });

  it('is replaced when the machine config changes', async () => {
    const files = tunnelFiles(stateDir, 'box');
    const old = (await readTunnelState(files))!;
    const changed = machineConfig('box', { bridge_cmd: 'tether daemon bridge --connect 127.0.0.1:1' });
    const { machine, telemetry } = viaTunnel(changed);
    expect(await echo(machine, 'new-config')).toBe('new-config');
    expect(telemetry[0]).toMatchObject({ reused: false });
    expect(telemetry[0]!.pid).not.toBe(old.pid);
    expect(isAlive(old.pid)).toBe(false);
    expect(await readTunnelState(files)).toMatchObject({ pid: telemetry[0]!.pid, configHash: tunnelConfigHash(changed, ssh) });
  });

  it('ends with one tunnel when two new processes race to start it', async () => {
    const config = machineConfig('race');
    const before = logins();
    const [a, b] = await Promise.all([clientProcess(config), clientProcess(config)]);
    expect(a.health.ok && b.health.ok).toBe(true);
    expect(a.telemetry.pid).toBe(b.telemetry.pid);
    expect((await readTunnelState(tunnelFiles(stateDir, 'race')))?.pid).toBe(a.telemetry.pid);
    // The tunnel that lost the race never connected.
    expect(logins() - before).toBe(1);
  });

  it('exits after its idle timeout and removes its files', async () => {
    const files = tunnelFiles(stateDir, 'idle');
    const { machine, telemetry } = viaTunnel(machineConfig('idle'), { idleTimeoutMs: 300 });
    expect((await machine.health()).ok).toBe(true);
    const { pid } = telemetry[0]!;
    // Busy while a connection is open.
    expect(isAlive(pid)).toBe(true);
    await machine.close();
    await eventually(() => !isAlive(pid), 10_000, 'idle tunnel exited');
    expect([existsSync(files.socket), existsSync(files.state), existsSync(files.token)]).toEqual([false, false, false]);
    expect(await readFile(files.log, 'utf8')).toContain('"reason":"idle"');
  });

  it('reconnects when its SSH connection is cut, exits when the server is gone, and the next call starts a new one', async () => {
    const sshdDir = join(dir, 'sshd-c');
    let server = await startSshd(sshdDir, [key]);
    const port = server.port;
    await appendFile(join(ssh.home, '.ssh', 'known_hosts'), `${knownHostsLine(server)}\n`);
    try {
      const config = machineConfig('cut', {}, port);
      const files = tunnelFiles(stateDir, 'cut');
      const first = await clientProcess(config);
      const { pid } = first.telemetry;

      // The session dies, the server stays: the tunnel logs in again and keeps serving.
      expect(await server.killSessions()).toBeGreaterThan(0);
      const again = await clientProcess(config);
      expect(again.telemetry).toMatchObject({ reused: true, pid });
      expect(server.log().split('Accepted publickey').length - 1).toBe(2);

      // The server goes away: the tunnel cannot reconnect, exits and removes its files.
      await server.stop();
      await eventually(() => !isAlive(pid), 20_000, 'tunnel exited after losing its server');
      expect([existsSync(files.socket), existsSync(files.state), existsSync(files.token)]).toEqual([false, false, false]);
      expect(await readFile(files.log, 'utf8')).toContain('"reason":"ssh-lost"');

      server = await startSshd(sshdDir, [key], [], { port });
      const recovered = await clientProcess(config);
      expect(recovered.health.ok).toBe(true);
      expect(recovered.telemetry.reused).toBe(false);
      expect(recovered.telemetry.pid).not.toBe(pid);
    } finally {
      await server.stop();
    }
  });

  it('carries the bridge command where the server forbids TCP forwarding', async () => {
    const server = await startSshd(join(dir, 'sshd-nofwd'), [key], ['AllowTcpForwarding no']);
    await appendFile(join(ssh.home, '.ssh', 'known_hosts'), `${knownHostsLine(server)}\n`);
    try {
      const config = machineConfig('bridged', { bridge_cmd: `${process.execPath} ${BRIDGE_MAIN} --connect 127.0.0.1:${daemonPort}` }, server.port);
      const { machine } = viaTunnel(config);
      expect(await echo(machine, 'over-the-bridge')).toBe('over-the-bridge');
      expect(await readTunnelState(tunnelFiles(stateDir, 'bridged'))).toMatchObject({ status: 'ready', route: 'bridge' });
      expect(server.log()).toContain('refused local port forward');
      await machine.close();
      await stopTunnel('bridged', { stateDir });
    } finally {
      await server.stop();
    }
  });

  it('fails with the reason the tunnel could not start, and leaves nothing running', async () => {
    const files = tunnelFiles(stateDir, 'nodaemon');
    const error = await rejection(connectViaTunnel(machineConfig('nodaemon', { daemon_port: await freePort() }), tunnelOptions()));
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', details: { reason: 'daemon-not-running' } });
    expect(error.message).toMatch(/^connection refused: no tether daemon listens/);
    expect([existsSync(files.socket), existsSync(files.state), existsSync(files.token)]).toEqual([false, false, false]);

    const none = await rejection(connectViaTunnel(machineConfig('nodaemon'), tunnelOptions({ spawnIfMissing: false })));
    expect(none).toMatchObject({ code: 'CONNECTION_LOST', details: { reason: 'no-tunnel' } });
    expect(await rejection(connectViaTunnel({ name: 'bad', transport: 'ssh' }, tunnelOptions()))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('is what the plugin uses with tunnelStateDir; tunnel: false connects directly', async () => {
    const pluginState = join(dir, 'plugin-state');
    const kernel = await createKernel({
      plugins: [{ plugin: sshPlugin, config: { ...ssh, tunnelStateDir: pluginState } }],
      machines: [{ ...machineConfig('kernel-tunneled'), name: 'kernel-tunneled' }, { ...machineConfig('kernel-direct'), tunnel: false }],
    });
    try {
      expect(kernel.plugins.failed).toEqual([]);
      for (const name of ['kernel-tunneled', 'kernel-direct']) {
        const run = await kernel.machine(name).exec.start({ argv: ['true'] });
        expect(await kernel.machine(name).exec.wait(run.id)).toMatchObject({ exitCode: 0 });
      }
      expect(await readTunnelState(tunnelFiles(pluginState, 'kernel-tunneled'))).toMatchObject({ status: 'ready' });
      expect(await readTunnelState(tunnelFiles(pluginState, 'kernel-direct'))).toBeUndefined();
    } finally {
      await kernel.close();
      expect(await stopTunnel('kernel-tunneled', { stateDir: pluginState })).toMatchObject({ stopped: true });
    }
  });

  it('is replaced when the daemon refuses its cached token (the daemon was re-initialised)', async () => {
    const config = machineConfig('rotate');
    const files = tunnelFiles(stateDir, 'rotate');
    await clientProcess(config);
    const old = (await readTunnelState(files))!;
    expect(old.configHash).toBe(tunnelConfigHash(config, ssh));
    const dataDir = join(dir, 'daemon');
    await daemon.close();
    await writeFile(daemon.tokenFile!, `${'c0ffee'.repeat(11)}\n`, { mode: 0o600 });
    daemon = await startDaemon({ listen: `127.0.0.1:${daemonPort}`, dataDir, tokenFile: daemon.tokenFile!, plugins: backends(await tempDir('tether-tun-work-')) });
    const { telemetry, health } = await clientProcess(config);
    expect(health.ok).toBe(true);
    expect(telemetry.reused).toBe(false);
    expect(telemetry.pid).not.toBe(old.pid);
    expect(isAlive(old.pid)).toBe(false);
    expect(await readToken(files.token)).toBe('c0ffee'.repeat(11));
  });

  it('stopTunnel stops the process and its files go', async () => {
    const files = tunnelFiles(stateDir, 'race');
    const { pid } = (await readTunnelState(files))!;
    expect(await stopTunnel('race', { stateDir })).toEqual({ stopped: true, pid });
    expect(isAlive(pid)).toBe(false);
    expect([existsSync(files.socket), existsSync(files.state), existsSync(files.token)]).toEqual([false, false, false]);
    expect(await stopTunnel('race', { stateDir })).toEqual({ stopped: false });
  });
});
