// A machine behind a relay, all through the CLI as separate processes: `relay serve`,
// `relay enroll`, `daemon serve --relay --environment`, then the contract's commands on the
// cloud machine, `machine check` with relay_ok, pinning with `machine trust`, and revocation.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, RFC3339, cliEnv, eventually, type CliEnv } from './support.js';

interface Served {
  readonly child: ChildProcess;
  readonly ready: Record<string, any>;
  stderr(): string;
}

let cli: CliEnv;
let relay: Served;
let daemon: Served;
let relayDir: string;
let daemonDir: string;
let clientToken: string;
const served: Served[] = [];

/** Starts a long-running CLI command and waits for its one JSON line on stdout. */
async function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: cli.home, env: { ...cli.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = await new Promise<Record<string, any>>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code}) before it was ready: ${stderr}`)));
  });
  const result = { child, ready, stderr: () => stderr };
  served.push(result);
  return result;
}

async function stop(s: Served): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((resolve) => s.child.once('exit', resolve));
  s.child.kill('SIGTERM');
  await exited;
}

function config(extra = ''): void {
  cli.writeConfig(`# a machine behind NAT, through the relay
machines:
  - name: gpu1
    transport: cloud
    relay: ${relay.ready['url']}
    token_file: ${join(daemonDir, 'token')}
    relay_token_file: ${join(cli.root, 'client.token')}
  - name: stranger
    transport: cloud
    relay: ${relay.ready['url']}
    environment: gpu1
    token_file: ${join(daemonDir, 'token')}
    relay_token: trc_this-is-not-a-client-credential-of-the-relay
${extra}`);
}

beforeAll(async () => {
  cli = cliEnv('tether-cli-cloud-');
  relayDir = join(cli.root, 'relay');
  daemonDir = join(cli.root, 'gpu1-daemon');
  relay = await serve(['relay', 'serve', '--listen', '127.0.0.1:0', '--data-dir', relayDir]);
  const enrolled = await cli.run(['relay', 'enroll', '--environment', 'gpu1', '--data-dir', relayDir]);
  expect(enrolled.code).toBe(0);
  const client = (await cli.run(['relay', 'enroll', '--client', 'agent', '--data-dir', relayDir, '--out', join(cli.root, 'client.token')])).json();
  expect(client).toEqual({ kind: 'client', name: 'agent', credential_file: join(cli.root, 'client.token'), rotated: false });
  clientToken = readFileSync(join(cli.root, 'client.token'), 'utf8').trim();
  daemon = await serve(['daemon', 'serve', '--data-dir', daemonDir, '--listen', 'none', '--relay', relay.ready['url'], '--environment', 'gpu1'], {
    TETHER_RELAY_CREDENTIAL: enrolled.json()['credential'],
  });
  config();
}, 60_000);
afterAll(async () => {
  for (const s of served.reverse()) await stop(s);
  await cli?.cleanup();
});

describe('relay and daemon', () => {
  it('relay serve and enroll: the credential printed once, a file written 0600, only hashes kept', async () => {
    expect(relay.ready).toEqual({ ok: true, pid: relay.child.pid, url: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/), data_dir: relayDir, admin_token_file: join(relayDir, 'admin-token') });
    expect(statSync(join(cli.root, 'client.token')).mode & 0o777).toBe(0o600);
    expect(clientToken).toMatch(/^trc_/);
    expect(readFileSync(join(relayDir, 'registry.json'), 'utf8')).not.toContain(clientToken);
    // The file is never overwritten.
    const again = await cli.run(['relay', 'enroll', '--client', 'other', '--data-dir', relayDir, '--out', join(cli.root, 'client.token')]);
    expect(again.code).toBe(9);
    expect(again.error().code).toBe('PATH_EXISTS');
  });

  it('daemon serve --relay: registered, credential stored 0600, its fingerprint in the ready line', async () => {
    expect(daemon.ready['relay']).toEqual({ url: relay.ready['url'], environment: 'gpu1', fingerprint: expect.stringMatching(/^SHA256:[A-Za-z0-9+/]{43}$/) });
    expect(statSync(join(daemonDir, 'relay-credential')).mode & 0o777).toBe(0o600);
    const fingerprint = (await cli.run(['daemon', 'fingerprint', '--data-dir', daemonDir])).json();
    expect(fingerprint).toEqual({ fingerprint: daemon.ready['relay'].fingerprint, cert_file: join(daemonDir, 'cloud-identity.crt'), created: false });
    await eventually(async () => (await cli.run(['relay', 'status', '--data-dir', relayDir])).json()['environments'][0]?.online === true, 10_000, 'gpu1 online');
    const status = (await cli.run(['relay', 'status', '--data-dir', relayDir])).json();
    expect(status).toEqual({ environments: [{ name: 'gpu1', online: true, last_seen: expect.stringMatching(RFC3339), sessions: expect.any(Number) }] });
    expect((await cli.run(['relay', 'status', '--data-dir', relayDir, '--status', 'offline'])).json()).toEqual({ environments: [] });
  });

  it('relay methods refuse a wrong operator token', async () => {
    writeFileSync(join(cli.root, 'bad-admin'), `${'0'.repeat(64)}\n`, { mode: 0o600 });
    const result = await cli.run(['relay', 'status', '--relay', relay.ready['url'], '--admin-token-file', join(cli.root, 'bad-admin')]);
    expect([result.code, result.stdout]).toEqual([7, '']);
    expect(result.error()).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/unauthorized/) });
  });
});

describe('a cloud machine', () => {
  it('is not trusted before its fingerprint is pinned: relay_ok true, daemon_ok false, the command to trust it (a report: exit 0)', async () => {
    const check = await cli.run(['machine', 'check', '--machine', 'gpu1']);
    expect(check.code).toBe(0);
    expect(check.json()).toEqual({
      hint: expect.any(String),
      name: 'gpu1',
      transport: 'cloud',
      ssh_ok: null,
      relay_ok: true,
      daemon_ok: false,
      latency_ms: null,
      checked_at: expect.stringMatching(RFC3339),
      error: expect.stringContaining(daemon.ready['relay'].fingerprint),
    });
    expect(check.json().hint).toContain(`tether machine trust --machine gpu1 --fingerprint ${daemon.ready['relay'].fingerprint}`);
  });

  it('machine trust pins it in the config, keeping comments; then machine check is ok', async () => {
    const trusted = await cli.run(['machine', 'trust', '--machine', 'gpu1', '--fingerprint', daemon.ready['relay'].fingerprint]);
    expect(trusted.json()).toEqual({ ok: true, machine: 'gpu1', fingerprint: daemon.ready['relay'].fingerprint, previous: null, config: cli.configFile });
    const text = readFileSync(cli.configFile, 'utf8');
    expect(text).toContain('# a machine behind NAT, through the relay');
    expect(text).toContain(`fingerprint: ${daemon.ready['relay'].fingerprint}`);
    const check = await cli.run(['machine', 'check', '--machine', 'gpu1']);
    expect(check.code).toBe(0);
    expect(check.json()).toEqual({
      name: 'gpu1',
      transport: 'cloud',
      ssh_ok: null,
      relay_ok: true,
      daemon_ok: true,
      latency_ms: expect.any(Number),
      checked_at: expect.stringMatching(RFC3339),
      daemon_version: '0.1.0',
    });
  });

  it('a wrong client credential: relay_ok false, "unauthorized" (a report: exit 0)', async () => {
    const check = await cli.run(['machine', 'check', '--machine', 'stranger']);
    expect(check.code).toBe(0);
    expect(check.json()).toMatchObject({ relay_ok: false, daemon_ok: false, error: expect.stringMatching(/^unauthorized: the relay refused the client credential/) });
    expect(check.json().hint).toMatch(/relay_token/);
  });

  it('exec, file, gpu and sync work as over ws', async () => {
    const run = await cli.run(['exec', 'run', '--machine', 'gpu1', '--cmd', 'echo through the relay; exit 3']);
    expect(run.code).toBe(3);
    const lines = run.lines();
    expect(lines.filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['through the relay']);
    expect(lines.at(-1)).toMatchObject({ type: 'finished', end_reason: 'exited', exit_code: 3 });

    const started = (await cli.run(['exec', 'start', '--machine', 'gpu1', '--cmd', 'echo started; sleep 0.2; echo done'])).json();
    expect(started).toEqual({ exec_id: expect.any(String), machine: 'gpu1', status: 'running' });
    const watched = await cli.run(['exec', 'watch', '--machine', 'gpu1', '--id', started['exec_id'], '--full']);
    expect(watched.code).toBe(0);
    expect(watched.lines().at(-1)).toMatchObject({ type: 'summary', status: 'finished', exit_code: 0 });
    expect((await cli.run(['exec', 'result', '--machine', 'gpu1', '--id', started['exec_id']])).json()).toMatchObject({ status: 'finished', stdout_bytes: 13 });
    expect((await cli.run(['exec', 'logs', '--machine', 'gpu1', '--id', started['exec_id']])).lines().map((l) => l['line'])).toEqual(['started', 'done']);

    const remote = join(cli.home, 'remote');
    expect((await cli.run(['file', 'write', '--machine', 'gpu1', '--dst', join(remote, 'a.txt'), '--content', 'hello', '--mkdir'])).json()).toMatchObject({ ok: true, bytes_written: 5 });
    const read = (await cli.run(['file', 'read', '--machine', 'gpu1', '--path', join(remote, 'a.txt')])).json();
    expect(Buffer.from(read['content'], 'base64').toString()).toBe('hello');
    expect((await cli.run(['gpu', 'status', '--machine', 'gpu1'])).json()).toMatchObject({ available: expect.any(Boolean) });

    const local = join(cli.root, 'project');
    mkdirSync(join(local, 'sub'), { recursive: true });
    writeFileSync(join(local, 'sub', 'b.bin'), Buffer.alloc(300_000, 7));
    expect((await cli.run(['sync', 'push', '--machine', 'gpu1', '--src', `${local}/`, '--dst', join(remote, 'project')])).json()).toMatchObject({ ok: true, files: 1, bytes: 300_000 });
    const back = join(cli.root, 'back');
    expect((await cli.run(['sync', 'pull', '--machine', 'gpu1', '--src', `${join(remote, 'project')}/`, '--dst', back])).json()).toMatchObject({ ok: true, files: 1 });
    expect(readFileSync(join(back, 'sub', 'b.bin')).equals(Buffer.alloc(300_000, 7))).toBe(true);
  });

  it('relay revoke: the daemon says why in its log and stops being reachable', async () => {
    const revoked = (await cli.run(['relay', 'revoke', '--environment', 'gpu1', '--data-dir', relayDir])).json();
    expect(revoked).toMatchObject({ kind: 'environment', name: 'gpu1', revoked: true, disconnected: expect.any(Number) });
    await eventually(() => daemon.stderr().includes('relay registration stopped'), 30_000, 'the daemon to give up');
    expect(daemon.stderr()).toMatch(/was revoked/);
    const check = await cli.run(['machine', 'check', '--machine', 'gpu1']);
    expect(check.code).toBe(0);
    expect(check.json()).toMatchObject({ relay_ok: true, daemon_ok: false, error: expect.stringMatching(/no longer enrolled/) });
    // The daemon is still up for its own socket.
    expect(daemon.child.exitCode).toBeNull();
  });
});

describe('a relay with TLS', () => {
  it('relay serve --tls-cert/--tls-key serves wss://, and the operator commands on its host check the certificate by its name', async () => {
    const { execFileSync } = await import('node:child_process');
    const cert = join(cli.root, 'relay-tls.crt');
    const key = join(cli.root, 'relay-tls.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=relay.test', '-addext', 'subjectAltName=DNS:relay.test', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const dir = join(cli.root, 'relay-tls');
    const tlsRelay = await serve(['relay', 'serve', '--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key, '--data-dir', dir]);
    expect(tlsRelay.ready['url']).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    expect(JSON.parse(readFileSync(join(dir, 'relay.json'), 'utf8'))).toMatchObject({ url: tlsRelay.ready['url'], tls_name: 'relay.test' });
    const enrolled = await cli.run(['relay', 'enroll', '--environment', 'secure', '--data-dir', dir, '--relay-ca-file', cert]);
    expect(enrolled.code).toBe(0);
    expect(enrolled.json()).toMatchObject({ kind: 'environment', name: 'secure', credential: expect.stringMatching(/^tre_/) });
    // Without trusting its CA, the operator's client refuses the relay.
    const refused = await cli.run(['relay', 'status', '--data-dir', dir]);
    expect(refused.code).toBe(7);
    expect(refused.error().message).toMatch(/not trusted/);
    await stop(tlsRelay);
  });
});

describe('daemon serve --relay beside a daemon that already runs', () => {
  it('attaches to it: sessions through the relay reach the running daemon', async () => {
    const dir = join(cli.root, 'attached-daemon');
    const first = await serve(['daemon', 'serve', '--data-dir', dir, '--listen', 'none']);
    const { credential } = (await cli.run(['relay', 'enroll', '--environment', 'attached', '--data-dir', relayDir])).json();
    const second = await serve(['daemon', 'serve', '--data-dir', dir, '--listen', 'none', '--relay', relay.ready['url'], '--environment', 'attached'], {
      TETHER_RELAY_CREDENTIAL: credential,
    });
    expect(second.ready).toMatchObject({ attached_to: first.child.pid, relay: { environment: 'attached', fingerprint: expect.stringMatching(/^SHA256:/) } });
    config(`  - name: attached
    transport: cloud
    relay: ${relay.ready['url']}
    fingerprint: ${second.ready['relay'].fingerprint}
    token_file: ${join(dir, 'token')}
    relay_token_file: ${join(cli.root, 'client.token')}
  - name: first
    addr: ${join(dir, 'daemon.sock')}
    token_file: ${join(dir, 'token')}
`);
    await eventually(async () => (await cli.run(['machine', 'check', '--machine', 'attached'])).code === 0, 10_000, 'attached reachable');
    const run = await cli.run(['exec', 'run', '--machine', 'attached', '--cmd', 'echo attached']);
    expect(run.code).toBe(0);
    const id = run.lines()[0]!['exec_id'];
    // The execution is the first daemon's: it finds it on its own socket.
    expect((await cli.run(['exec', 'result', '--machine', 'first', '--id', id])).json()).toMatchObject({ exec_id: id, status: 'finished', exit_code: 0 });
    await stop(second);
    await stop(first);
  });
});

