// sshConnect and runSshCommand against real OpenSSH servers on loopback: host key policy
// (unknown, changed, hashed, revoked), client authentication (identity files, the agent,
// encrypted keys), ProxyJump through a second sshd, and error translation.
import { execFile } from 'node:child_process';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from '@tether/core/testing';
import { runSshCommand, sshConnect, type SshConnectOptions } from './index.js';
import { freePort, keygen, knownHostsLine, removeTempDirs, startAgent, startSshd, tempDir, type Agent, type Sshd, USER } from '../test/support.js';

const sh = promisify(execFile);

let dir: string;
let home: string;
let knownHosts: string;
let sshdA: Sshd;
let sshdB: Sshd;
let agent: Agent;
const base = (): SshConnectOptions => ({ home, systemConfigFile: null, agent: null });

beforeAll(async () => {
  dir = await tempDir();
  home = join(dir, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const authorized = await keygen(join(home, '.ssh', 'id_ed25519'));
  const viaAgent = await keygen(join(dir, 'agent_key'));
  const encrypted = await keygen(join(home, '.ssh', 'id_encrypted'), { passphrase: 'correct horse' });
  await keygen(join(home, '.ssh', 'id_stranger'));
  const keys = [authorized, viaAgent, encrypted];
  [sshdA, sshdB] = await Promise.all([startSshd(join(dir, 'sshd-a'), keys), startSshd(join(dir, 'sshd-b'), keys, ['AllowTcpForwarding no'])]);
  knownHosts = join(home, '.ssh', 'known_hosts');
  await writeFile(knownHosts, `${knownHostsLine(sshdA)}\n${knownHostsLine(sshdB)}\n`);
  await writeFile(
    join(home, '.ssh', 'config'),
    [
      'Host gpu-*',
      '  HostName 127.0.0.1',
      `  User ${USER}`,
      `Host gpu-a`,
      `  Port ${sshdA.port}`,
      `Host gpu-b-via-a`,
      `  Port ${sshdB.port}`,
      `  ProxyJump gpu-a`,
      'Host stranger',
      '  HostName 127.0.0.1',
      `  Port ${sshdA.port}`,
      '  IdentityFile ~/.ssh/id_stranger',
      'Host locked',
      '  HostName 127.0.0.1',
      `  Port ${sshdA.port}`,
      '  IdentityFile ~/.ssh/id_encrypted',
      '',
    ].join('\n'),
  );
  agent = await startAgent(dir);
  await agent.add(join(dir, 'agent_key'));
});

afterAll(async () => {
  await Promise.all([sshdA?.stop(), sshdB?.stop(), agent?.stop()]);
  await removeTempDirs();
});

describe('connecting', () => {
  it('reaches a Host alias with its HostName, Port and User, and runs commands on one connection', async () => {
    const ssh = await sshConnect('gpu-a', base());
    try {
      expect(ssh.host).toMatchObject({ alias: 'gpu-a', hostName: '127.0.0.1', port: sshdA.port, user: USER });
      const [a, b] = await Promise.all([ssh.run('echo one; echo err >&2; exit 3'), ssh.run('cat', { stdin: 'piped' })]);
      expect(a).toMatchObject({ code: 3 });
      expect(a.stdout.toString()).toBe('one\n');
      expect(a.stderr.toString()).toBe('err\n');
      expect(b.stdout.toString()).toBe('piped');
    } finally {
      ssh.close();
    }
    expect(await ssh.closed).toBeUndefined();
    expect(ssh.isOpen).toBe(false);
  });

  it('takes user@host:port targets, runs with a tty and forwards the agent on request', async () => {
    const target = `${USER}@127.0.0.1:${sshdA.port}`;
    const plain = await runSshCommand(target, 'test -t 0 && echo tty || echo no-tty; echo "agent=${SSH_AUTH_SOCK:-none}"', base());
    expect(plain).toMatchObject({ code: 0, forwardAgent: false });
    expect(plain.stdout).toBe('no-tty\nagent=none\n');
    const forwarded = await runSshCommand(target, 'test -t 0 && echo tty; ssh-add -l', { ...base(), agent: agent.socket, tty: true, forwardAgent: true });
    expect(forwarded).toMatchObject({ code: 0, forwardAgent: true });
    expect(forwarded.stdout).toContain('tty');
    expect(forwarded.stdout).toContain('tether-test'); // the agent's key, listed through the forwarded agent
  });

  it('goes through a ProxyJump host (the jump sshd opens the TCP connection to the target)', async () => {
    const result = await runSshCommand('gpu-b-via-a', 'echo through', base());
    expect(result).toMatchObject({ code: 0, stdout: 'through\n' });
    expect(sshdA.log()).toContain(`server_request_direct_tcpip: originator 127.0.0.1 port 0, target 127.0.0.1 port ${sshdB.port}`);
  });

  it('notices a server that stopped answering through SSH keepalive', async () => {
    const before = new Set(await sshdA.sessionPids());
    const ssh = await sshConnect('gpu-a', { ...base(), keepaliveIntervalMs: 100, keepaliveCountMax: 2 });
    // Freeze exactly the processes serving this connection (earlier tests' sessions may still be ending).
    let frozen: number[] = [];
    const deadline = Date.now() + 5000;
    while ((frozen = (await sshdA.sessionPids()).filter((pid) => !before.has(pid))).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(frozen.length).toBeGreaterThan(0);
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const why = await ssh.closed;
      expect(why, String(why)).toMatchObject({ code: 'CONNECTION_LOST', details: { errno: 'ETIMEDOUT' } });
      expect(why!.message).toMatch(/^connection reset by peer: .* stopped answering/);
    } finally {
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('says "connection refused" with CONNECTION_LOST when nothing listens', async () => {
    const error = await rejection(sshConnect(`${USER}@127.0.0.1:${await freePort()}`, base()));
    expect(error.code).toBe('CONNECTION_LOST');
    expect(error.message).toMatch(/^connection refused/);
  });
});

describe('host keys', () => {
  it('refuses an unknown host key with its fingerprint and the command that trusts it, and the command works', async () => {
    const file = join(dir, 'empty_known_hosts');
    await writeFile(file, '');
    const options = { ...base(), knownHostsFiles: [file] };
    const error = await rejection(sshConnect(`${USER}@127.0.0.1:${sshdA.port}`, options));
    const { stdout: fingerprintLine } = await sh('ssh-keygen', ['-l', '-f', join(dir, 'sshd-a', 'host_ed25519.pub')]);
    const fingerprint = fingerprintLine.split(' ')[1]!;
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'host-key-unknown', fingerprint } });
    expect(error.message).toMatch(/^unauthorized: /);
    expect(error.message).toContain(fingerprint);
    const command = `ssh-keyscan -p ${sshdA.port} 127.0.0.1 >> ${file}`;
    expect(error.message).toContain(command);
    expect(error.details['command']).toBe(command);

    await sh('sh', ['-c', command]);
    const ssh = await sshConnect(`${USER}@127.0.0.1:${sshdA.port}`, options);
    ssh.close();
  });

  it('refuses a changed host key loudly, naming the offending line', async () => {
    const file = join(dir, 'changed_known_hosts');
    const impostor = await keygen(join(dir, 'impostor'));
    await writeFile(file, `# header\n[127.0.0.1]:${sshdA.port} ${impostor.split(' ').slice(0, 2).join(' ')}\n`);
    const error = await rejection(sshConnect(`${USER}@127.0.0.1:${sshdA.port}`, { ...base(), knownHostsFiles: [file] }));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'host-key-changed', offending: [{ file, line: 2 }] } });
    expect(error.message).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    expect(error.message).toContain(`ssh-keygen -R '[127.0.0.1]:${sshdA.port}'`);
  });

  it('accepts a hashed known_hosts entry (ssh-keygen -H) and refuses a @revoked key', async () => {
    const file = join(dir, 'hashed_known_hosts');
    await writeFile(file, `${knownHostsLine(sshdA)}\n`);
    await sh('ssh-keygen', ['-H', '-f', file]);
    const ssh = await sshConnect(`${USER}@127.0.0.1:${sshdA.port}`, { ...base(), knownHostsFiles: [file] });
    ssh.close();

    await appendFile(file, `@revoked * ${sshdA.hostKey.split(' ').slice(0, 2).join(' ')}\n`);
    const error = await rejection(sshConnect(`${USER}@127.0.0.1:${sshdA.port}`, { ...base(), knownHostsFiles: [file] }));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'host-key-revoked' } });
  });

  it('checks the target behind a jump host under its own name', async () => {
    const file = join(dir, 'jump_only_known_hosts');
    await writeFile(file, `${knownHostsLine(sshdA)}\n`);
    const error = await rejection(sshConnect('gpu-b-via-a', { ...base(), knownHostsFiles: [file] }));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'host-key-unknown', host: `[127.0.0.1]:${sshdB.port}`, command: 'ssh gpu-b-via-a' } });
  });
});

describe('client authentication', () => {
  it('refuses a key the server does not accept with UNAUTHORIZED', async () => {
    const error = await rejection(sshConnect('stranger', base()));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'auth-failed' } });
    expect(error.message).toMatch(new RegExp(`^unauthorized: ${USER}@127\\.0\\.0\\.1:\\d+ refused every key offered`));
    expect(error.message).toContain('id_stranger');
  });

  it('authenticates with the ssh-agent alone (no identity file)', async () => {
    const noFiles = { ...base(), identityFiles: [] };
    const withoutAgent = await rejection(sshConnect('gpu-a', noFiles));
    expect(withoutAgent).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'no-identity' } });
    const result = await runSshCommand('gpu-a', 'echo agent-ok', { ...noFiles, agent: agent.socket });
    expect(result.stdout).toBe('agent-ok\n');
    // A stale SSH_AUTH_SOCK does not stop the identity files from being tried.
    const stale = await runSshCommand('gpu-a', 'echo file-ok', { ...base(), agent: join(dir, 'no-agent.sock') });
    expect(stale.stdout).toBe('file-ok\n');
    const neither = await rejection(sshConnect('gpu-a', { ...noFiles, agent: join(dir, 'no-agent.sock') }));
    expect(neither).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'auth-failed' } });
    expect(neither.message).toContain('the ssh-agent at');
  });

  it('asks to ssh-add an encrypted key when there is no agent, and uses it once the agent holds it', async () => {
    const keyFile = join(home, '.ssh', 'id_encrypted');
    const error = await rejection(sshConnect('locked', base()));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', details: { reason: 'key-encrypted' } });
    expect(error.message).toContain('encrypted');
    expect(error.message).toContain(`ssh-add ${keyFile}`);

    const own = await startAgent(await tempDir());
    try {
      // ssh-add needs the passphrase: give it through a throwaway askpass script.
      const askpass = join(dir, 'askpass.sh');
      await writeFile(askpass, "#!/bin/sh\necho 'correct horse'\n", { mode: 0o700 });
      await sh('ssh-add', [keyFile], { env: { ...process.env, SSH_AUTH_SOCK: own.socket, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } });
      const result = await runSshCommand('locked', 'echo unlocked', { ...base(), agent: own.socket });
      expect(result.stdout).toBe('unlocked\n');
    } finally {
      await own.stop();
    }
  });
});
