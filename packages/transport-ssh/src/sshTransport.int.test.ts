// The ssh transport end to end with real sshds and a real daemon: the bridge fallback where TCP
// forwarding is forbidden, the plugin in a kernel through a ProxyJump alias, one SSH connection
// for many channels, clear failures, and byte-identical output after the SSH connection is
// killed mid-stream.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, RemoteMachine, type MachineConfig } from '@tether/core';
import { followStdout, rejection } from '@tether/core/testing';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import sshPlugin, { SshTransport, machineSchema, type SshTransportOptions } from './index.js';
import { BRIDGE_MAIN, backends, eventually, freePort, keygen, knownHostsLine, removeTempDirs, startSshd, tempDir, type Sshd, USER } from '../test/support.js';

const MiB = 1024 * 1024;
let dir: string;
let options: SshTransportOptions;
let sshdA: Sshd; // TCP forwarding allowed
let sshdB: Sshd; // AllowTcpForwarding no
let daemon: Daemon;
let daemonPort: number;
const transports: SshTransport[] = [];
const machines: RemoteMachine[] = [];

beforeAll(async () => {
  dir = await tempDir();
  const home = join(dir, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true });
  const key = await keygen(join(home, '.ssh', 'id_ed25519'));
  [sshdA, sshdB] = await Promise.all([startSshd(join(dir, 'sshd-a'), [key]), startSshd(join(dir, 'sshd-b'), [key], ['AllowTcpForwarding no'])]);
  await writeFile(join(home, '.ssh', 'known_hosts'), `${knownHostsLine(sshdA)}\n${knownHostsLine(sshdB)}\n`);
  await writeFile(
    join(home, '.ssh', 'config'),
    ['Host box-*', '  HostName 127.0.0.1', `  User ${USER}`, 'Host box-a', `  Port ${sshdA.port}`, 'Host box-b', `  Port ${sshdB.port}`, '  ProxyJump box-a', ''].join('\n'),
  );
  options = { home, systemConfigFile: null, agent: null };
  const work = await tempDir('tether-ssh-work-');
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(dir, 'daemon'), plugins: backends(work) });
  daemonPort = (daemon.address as { port: number }).port;
});

afterAll(async () => {
  await Promise.all(machines.map((m) => m.close()));
  for (const transport of transports) transport.close();
  await daemon?.close();
  await Promise.all([sshdA?.stop(), sshdB?.stop()]);
  await removeTempDirs();
});

function newTransport(extra: Partial<SshTransportOptions> = {}): SshTransport {
  const transport = new SshTransport({ ...options, ...extra });
  transports.push(transport);
  return transport;
}

function machineConfig(ssh: string, extra: Record<string, unknown> = {}): MachineConfig {
  return { name: 'box', transport: 'ssh', ssh, daemon_port: daemonPort, token_file: daemon.tokenFile!, ...extra };
}

const bridgeCmd = () => `${process.execPath} ${BRIDGE_MAIN} --connect 127.0.0.1:${daemonPort}`;

function remote(transport: SshTransport, config: MachineConfig): RemoteMachine {
  const machine = new RemoteMachine({ name: config.name, connect: (signal) => transport.connect(config, signal), reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  machines.push(machine);
  return machine;
}

async function stdoutOf(machine: RemoteMachine, command: string): Promise<string> {
  const run = await machine.exec.start({ command });
  const done = await machine.exec.wait(run.id);
  expect(done).toMatchObject({ status: 'finished', exitCode: 0 });
  const { lines } = await machine.exec.logs(run.id, { tailLines: 1000 });
  return lines.map((l) => l.line).join('\n');
}

describe('reaching the daemon', () => {
  it('carries many channels over one SSH connection', async () => {
    const transport = newTransport();
    const accepted = () => sshdA.log().split('Accepted publickey').length - 1;
    const before = accepted();
    const config = machineConfig(`${USER}@127.0.0.1:${sshdA.port}`);
    const [one, two, three] = [remote(transport, config), remote(transport, config), remote(transport, config)];
    const outputs = await Promise.all([one, two, three, one, two, three].map((m, i) => stdoutOf(m, `echo call-${i}`)));
    expect(outputs).toEqual(['call-0', 'call-1', 'call-2', 'call-3', 'call-4', 'call-5']);
    expect(transport.connectionsOpened).toBe(1);
    expect(transport.openConnections).toBe(1);
    expect(accepted() - before).toBe(1);
  });

  it('falls back to the bridge command when the server forbids TCP forwarding', async () => {
    const transport = newTransport();
    const marker = join(dir, 'bridge-ran');
    const machine = remote(transport, machineConfig(`${USER}@127.0.0.1:${sshdB.port}`, { bridge_cmd: `echo bridged >> ${marker}; exec ${bridgeCmd()}` }));
    expect(await stdoutOf(machine, 'echo via-bridge; printf "%s\\n" a b c')).toBe('via-bridge\na\nb\nc');
    // The server refused the forwarded channel; then the bridge carried the connection.
    expect(sshdB.log()).toContain(`refused local port forward: originator 127.0.0.1 port 0, target 127.0.0.1 port ${daemonPort}`);
    expect(await readFile(marker, 'utf8')).toBe('bridged\n');
  });

  it('runs the plugin in a kernel, through a ProxyJump alias and the bridge', async () => {
    const kernel = await createKernel({
      plugins: [{ plugin: sshPlugin, config: options }],
      machines: [{ ...machineConfig('box-b', { bridge_cmd: bridgeCmd() }), name: 'gpu' }],
    });
    try {
      expect(kernel.plugins.failed).toEqual([]);
      const gpu = kernel.machine('gpu');
      const run = await gpu.exec.start({ argv: ['printf', 'kernel-over-jump'] });
      expect(await gpu.exec.wait(run.id)).toMatchObject({ exitCode: 0, bytes: { stdout: 16 } });
      expect((await gpu.info()).backends.process).toBe(true);
    } finally {
      await kernel.close();
    }
    expect(sshdA.log()).toContain(`target 127.0.0.1 port ${sshdB.port}`);
  });

  it('validates the machine config and the plugin config with their schemas', async () => {
    const typo = await createKernel({ plugins: [{ plugin: sshPlugin, config: { keepaliveIntervalMS: 5 } }] });
    expect(typo.plugins.failed.map((f) => f.error.code)).toEqual(['PLUGIN_LOAD_FAILED']);
    await typo.close();
    expect(machineSchema.parse({ ssh: 'gpu1' })).toEqual({ ssh: 'gpu1', daemon_port: 7337 });
    expect(machineSchema.safeParse({ ssh: 'gpu1', daemon_port: 70000 }).success).toBe(false);
    const error = await rejection(newTransport().connect({ name: 'bad', transport: 'ssh', ssh: '' }));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(error.message).toContain('ssh');
  });
});

describe('failing clearly', () => {
  it('says "connection refused" when no daemon listens on the port, and how to start one', async () => {
    const error = await rejection(newTransport().connect(machineConfig(`${USER}@127.0.0.1:${sshdA.port}`, { daemon_port: await freePort() })));
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', details: { reason: 'daemon-not-running' } });
    expect(error.message).toMatch(/^connection refused: no tether daemon listens on 127\.0\.0\.1:\d+/);
    expect(error.message).toContain('tether machine up --machine box');
  });

  it('says the daemon was never started when its token file is missing', async () => {
    const error = await rejection(newTransport().connect(machineConfig(`${USER}@127.0.0.1:${sshdA.port}`, { token_file: join(dir, 'no', 'token') })));
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', details: { reason: 'no-token' } });
    expect(error.message).toMatch(/^connection refused: there is no daemon token/);
  });

  it('refuses a wrong token with UNAUTHORIZED', async () => {
    const error = await rejection(newTransport().connect(machineConfig(`${USER}@127.0.0.1:${sshdA.port}`, { token: 'f'.repeat(64) })));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(error.message).toMatch(/^unauthorized/);
  });

  it('reports the bridge command\'s own error when it cannot run', async () => {
    const error = await rejection(newTransport().connect(machineConfig(`${USER}@127.0.0.1:${sshdB.port}`)));
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', details: { reason: 'bridge-failed', exitCode: 127 } });
    expect(error.message).toContain(`tether daemon bridge --connect 127.0.0.1:${daemonPort}`);
    expect(error.message).toMatch(/not found/);
  });
});

describe('surviving a killed SSH connection', () => {
  for (const route of ['forward', 'bridge'] as const) {
    it(`resumes byte-identical output after the sshd serving the connection is killed twice (${route})`, async () => {
      const transport = newTransport();
      const sshd = route === 'forward' ? sshdA : sshdB;
      const machine = remote(transport, machineConfig(`${USER}@127.0.0.1:${sshd.port}`, route === 'bridge' ? { bridge_cmd: bridgeCmd() } : {}));
      const hashFile = join(dir, `producer-${route}.sha256`);
      // 24 MiB in three parts; the producer holds each part back until the test has cut the
      // connection that carried the one before, so every cut is followed by output that can only
      // arrive over a new connection (however fast the producer runs beside the follower).
      const gates = [join(dir, `gate-${route}-1`), join(dir, `gate-${route}-2`)];
      const waitFor = (file: string) => `while [ ! -e ${file} ]; do sleep 0.02; done`;
      const produce = `{ head -c ${4 * MiB} /dev/urandom; ${waitFor(gates[0]!)}; head -c ${8 * MiB} /dev/urandom; ${waitFor(gates[1]!)}; head -c ${12 * MiB} /dev/urandom; }`;
      const run = await machine.exec.start({ command: `${produce} | tee >(sha256sum > ${hashFile})`, shell: 'bash' });
      const connectionsBefore = machine.connections;

      const cutsAt = [4 * MiB, 12 * MiB];
      const kills: Array<Promise<number>> = [];
      const received = await followStdout(machine, run.id, (bytes) => {
        if (cutsAt.length > 0 && bytes >= cutsAt[0]!) {
          cutsAt.shift();
          const gate = gates[kills.length]!;
          kills.push(sshd.killSessions().then(async (killed) => (await writeFile(gate, ''), killed)));
        }
      });
      expect(cutsAt).toEqual([]);
      for (const killed of await Promise.all(kills)) expect(killed).toBeGreaterThan(0);

      await eventually(async () => /^[0-9a-f]{64} /.test(await readFile(hashFile, 'utf8').catch(() => '')), 10_000, 'producer hash written');
      expect(received.bytes).toBe(24 * MiB);
      expect(received.sha256).toBe((await readFile(hashFile, 'utf8')).slice(0, 64));
      expect(machine.connections - connectionsBefore).toBeGreaterThanOrEqual(2);
      expect(transport.connectionsOpened).toBeGreaterThanOrEqual(3);
      expect(await machine.exec.get(run.id)).toMatchObject({ status: 'finished', exitCode: 0 });
    });
  }
});
