// Who may do what at the relay: no method without a credential, clients and daemons refused
// with the wrong one, revocation taking effect at once, the registry surviving a restart with
// only hashes on disk, and inside the session the daemon's own token and pinned identity.
import { request } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { connectCloud, RelayAdmin, RelayAgent, RelayServer, type LogEntry } from './index.js';
import { clientOf, eventually, rejection, removeTempDirs, startCloudDaemon, startRelay, tempDir, type CloudDaemon } from '../test/support.js';

let relay: RelayServer;
let cloud: CloudDaemon;
let root: string;

beforeAll(async () => {
  root = await tempDir();
  relay = await startRelay();
  cloud = await startCloudDaemon(relay, 'gpu1', { root });
});
afterAll(async () => {
  await cloud?.close();
  await relay?.close();
  await removeTempDirs();
});

function http(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${relay.url.replace(/^ws/, 'http')}${path}`, { method, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function upgrade(path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${relay.url}${path}`, { headers });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', reject);
  });
}

describe('no relay method answers without a credential', () => {
  it('operator methods need the admin token', async () => {
    const wrong = { Authorization: 'Bearer not-the-admin-token-at-all' };
    for (const [method, path] of [
      ['GET', '/v1/environments'],
      ['GET', '/v1/environments?status=online'],
      ['POST', '/v1/environments/gpu1/enroll'],
      ['POST', '/v1/environments/gpu1/revoke'],
      ['POST', '/v1/clients/alice/enroll'],
      ['POST', '/v1/clients/alice/revoke'],
      ['GET', '/'],
      ['GET', '/v1/nothing-here'],
    ] as const) {
      for (const headers of [{}, wrong]) {
        const reply = await http(method, path, headers);
        expect(reply.status, `${method} ${path}`).toBe(401);
        expect(reply.body).not.toContain('gpu1');
      }
    }
    // gpu1 is still enrolled and online: nothing above changed anything.
    expect(relay.status()).toEqual([expect.objectContaining({ name: 'gpu1', online: true })]);
  });

  it('registering, accepting and connecting need the credential of their kind', async () => {
    const client = (await relay.enroll('client', 'auth-probe')).credential;
    for (const path of ['/v1/environments/gpu1/register', '/v1/environments/gpu1/accept/AAAAAAAAAAAAAAAAAAAAAAAA', '/v1/environments/gpu1/connect']) {
      expect(await upgrade(path), path).toBe(401);
      expect(await upgrade(path, { Authorization: 'Bearer tre_wrongwrongwrongwrongwrong' }), path).toBe(401);
    }
    // A client credential does not register an environment, and an enrolment credential is not a client's.
    expect(await upgrade('/v1/environments/gpu1/register', { Authorization: `Bearer ${client}` })).toBe(401);
    expect(await upgrade('/v1/environments/gpu1/connect', { Authorization: `Bearer ${cloud.credential}` })).toBe(401);
    // Credentials are never taken from the URL.
    expect(await upgrade(`/v1/environments/gpu1/connect?token=${client}`, { Authorization: `Bearer ${client}` })).toBe(400);
  });
});

describe('operator methods', () => {
  it('lists environments online and offline with last-seen times, through RelayAdmin', async () => {
    const admin = new RelayAdmin({ relay: relay.url, adminToken: (await readFile(relay.adminTokenFile!, 'utf8')).trim() });
    await admin.enroll('environment', 'never-online');
    const all = await admin.status();
    expect(all.map((e) => [e.name, e.online])).toEqual([
      ['gpu1', true],
      ['never-online', false],
    ]);
    expect(Date.parse(all[0]!.last_seen!)).not.toBeNaN();
    expect(all[1]!.last_seen).toBeNull();
    expect((await admin.status('online')).map((e) => e.name)).toEqual(['gpu1']);
    expect((await admin.status('offline')).map((e) => e.name)).toEqual(['never-online']);
    // Enrolling twice needs a rotation; a bad name is refused.
    expect((await rejection(admin.enroll('environment', 'never-online'))).code).toBe('PATH_EXISTS');
    expect((await rejection(admin.enroll('environment', '../etc'))).code).toBe('INVALID_ARGUMENT');
    const wrong = new RelayAdmin({ relay: relay.url, adminToken: 'x'.repeat(32) });
    expect((await rejection(wrong.status())).code).toBe('UNAUTHORIZED');
  });

  it('keeps the registry on disk (mode 0600, hashes only) and honours it after a restart', async () => {
    const dataDir = await tempDir('tether-relay-');
    const first = await RelayServer.start({ listen: '127.0.0.1:0', dataDir });
    const { credential } = await first.enroll('client', 'persisted');
    const env = await first.enroll('environment', 'persisted-env');
    await first.close();
    const file = join(dataDir, 'registry.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, 'utf8');
    expect(text).toContain('persisted-env');
    expect(text).not.toContain(credential);
    expect(text).not.toContain(env.credential);

    const second = await RelayServer.start({ listen: '127.0.0.1:0', dataDir });
    try {
      expect(second.registry.verifyClient(credential)).toEqual({ verdict: 'ok', client: 'persisted' });
      expect(second.registry.verifyEnvironment('persisted-env', env.credential)).toBe('ok');
      expect(second.registry.verifyEnvironment('persisted-env', credential)).toBe('wrong');
    } finally {
      await second.close();
    }
  });
});

describe('clients', () => {
  it('a wrong client credential is unauthorized at the relay', async () => {
    const error = await rejection(
      connectCloud({ relay: relay.url, environment: 'gpu1', relayToken: 'trc_not-a-credential-of-this-relay', token: cloud.token, fingerprint: cloud.identity.fingerprint }),
    );
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toMatch(/^unauthorized: the relay refused the client credential/);
    expect(error.details['relayOk']).toBe(false);
  });

  it('a revoked client is refused, and its open session is closed', async () => {
    const machine = await clientOf(relay, 'gpu1', cloud, { client: 'to-revoke', giveUpAfterMs: 500 });
    await machine.health();
    expect((await relay.revoke('client', 'to-revoke')).disconnected).toBe(1);
    const error = await rejection(machine.health());
    expect(['UNAUTHORIZED', 'CONNECTION_LOST']).toContain(error.code);
    await machine.close();
  });

  it('the daemon checks its own token inside the session', async () => {
    const { credential } = await relay.enroll('client', 'bad-daemon-token');
    const error = await rejection(
      connectCloud({ relay: relay.url, environment: 'gpu1', relayToken: credential, token: 'f'.repeat(64), fingerprint: cloud.identity.fingerprint }),
    );
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('refused the token');
    expect(error.details['relayOk']).toBe(true);
  });

  it('relayed sessions take the daemon\'s connection slots: over its limit the quietest one is closed', async () => {
    const small = await startCloudDaemon(relay, 'small', { root, daemon: { maxConnections: 2 } });
    const { credential } = await relay.enroll('client', 'slots');
    const options = { relay: relay.url, environment: 'small', relayToken: credential, token: small.token, fingerprint: small.identity.fingerprint };
    const ends: Array<Promise<unknown>> = [];
    const channels = [];
    for (let i = 0; i < 3; i++) {
      const channel = await connectCloud(options);
      ends.push(
        new Promise((resolve) =>
          channel.messages$.subscribe({ error: (e: { details?: Record<string, unknown> }) => resolve(e.details?.['closeCode']), complete: () => resolve('complete') }),
        ),
      );
      channels.push(channel);
    }
    // The first session was the quietest when the third came in: closed with 1013 (try again later).
    expect(await ends[0]).toBe(1013);
    for (const channel of channels) channel.close();
    await small.close();
  });

  it('an agent given the daemon\'s address (target) instead of the daemon serves the same way, token checked', async () => {
    const dialled = await startCloudDaemon(relay, 'dialled', { root, dial: true });
    const machine = await clientOf(relay, 'dialled', dialled);
    expect((await machine.health()).ok).toBe(true);
    await machine.close();
    const { credential } = await relay.enroll('client', 'dialled-bad-token');
    const error = await rejection(
      connectCloud({ relay: relay.url, environment: 'dialled', relayToken: credential, token: 'f'.repeat(64), fingerprint: dialled.identity.fingerprint }),
    );
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('refused the token');
    await dialled.close();
  });

  it('an unknown daemon is never trusted on first use: refused with its fingerprint and how to trust it', async () => {
    const { credential } = await relay.enroll('client', 'no-pin');
    const error = await rejection(connectCloud({ relay: relay.url, environment: 'gpu1', relayToken: credential, token: cloud.token, fingerprint: undefined, machine: 'gpu1' }));
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.details['reason']).toBe('fingerprint-unknown');
    expect(error.message).toContain(cloud.identity.fingerprint);
    expect(error.message).toContain(`tether machine trust --machine gpu1 --fingerprint ${cloud.identity.fingerprint}`);
  });

  it('an offline environment is a connection failure the client retries; an unknown one is refused', async () => {
    await relay.enroll('environment', 'sleeping');
    const { credential } = await relay.enroll('client', 'offline-probe');
    const offline = await rejection(connectCloud({ relay: relay.url, environment: 'sleeping', relayToken: credential, token: cloud.token, fingerprint: cloud.identity.fingerprint }));
    expect(offline.code).toBe('CONNECTION_LOST');
    expect(offline.message).toMatch(/environment sleeping is offline \(last seen never\)/);
    const unknown = await rejection(connectCloud({ relay: relay.url, environment: 'nobody', relayToken: credential, token: cloud.token, fingerprint: cloud.identity.fingerprint }));
    expect(unknown.code).toBe('UNAUTHORIZED');
    expect(unknown.message).toContain('not enrolled');
  });
});

describe('daemons', () => {
  it('a wrong enrolment credential is retried a bounded number of times, then the agent stops and says why', async () => {
    await relay.enroll('environment', 'wrong-cred');
    const lines: LogEntry[] = [];
    const agent = RelayAgent.start({
      relay: relay.url,
      environment: 'wrong-cred',
      credential: 'tre_this-is-not-the-credential',
      identity: cloud.identity,
      target: join(root, 'nothing.sock'),
      backoff: { initialDelayMs: 5, maxDelayMs: 20 },
      maxAuthFailures: 3,
      log: (line) => lines.push(line),
    });
    const reason = await agent.stopped;
    expect(isTetherError(reason, 'UNAUTHORIZED')).toBe(true);
    expect(reason!.message).toContain('refused the enrolment credential of environment wrong-cred 3 times');
    expect(reason!.message).toContain('tether relay enroll --environment wrong-cred');
    expect(lines.filter((l) => l.msg === 'the relay refused the registration')).toHaveLength(3);
    expect(agent.state).toBe('stopped');
    expect(JSON.stringify(lines)).not.toContain('this-is-not-the-credential');
  });

  it('reconnects with doubling, jittered delays up to the cap', async () => {
    const lines: LogEntry[] = [];
    const agent = RelayAgent.start({
      relay: 'ws://127.0.0.1:1',
      environment: 'nowhere',
      credential: 'tre_credential-for-a-relay-that-is-not-there',
      identity: cloud.identity,
      target: join(root, 'nothing.sock'),
      backoff: { initialDelayMs: 8, maxDelayMs: 64 },
      log: (line) => lines.push(line),
    });
    await eventually(() => lines.filter((l) => l.msg === 'retrying').length >= 6, 10_000, 'six retries');
    agent.close();
    expect(await agent.stopped).toBeUndefined();
    const ceilings = lines.filter((l) => l.msg === 'retrying').slice(0, 6).map((l) => l['ceilingMs']);
    expect(ceilings).toEqual([8, 16, 32, 64, 64, 64]);
    for (const line of lines.filter((l) => l.msg === 'retrying')) {
      expect(line['delayMs']).toBeGreaterThanOrEqual((line['ceilingMs'] as number) / 2);
      expect(line['delayMs']).toBeLessThanOrEqual(line['ceilingMs'] as number);
    }
  });

  it('revoking an enrolment closes its registration and sessions: the daemon stops being reachable and says why', async () => {
    const other = await startCloudDaemon(relay, 'revoked-env', { root, agent: { maxAuthFailures: 2 } });
    const machine = await clientOf(relay, 'revoked-env', other, { giveUpAfterMs: 500 });
    const lines: LogEntry[] = [];
    const agent = await other.restartAgent({ log: (line) => lines.push(line) });
    await agent.when('registered');
    await machine.health();
    const running = await other.daemon.kernel.machine('local').exec.start({ command: 'sleep 30' });

    const { disconnected } = await relay.revoke('environment', 'revoked-env');
    expect(disconnected).toBeGreaterThanOrEqual(2); // the registration and the client's session
    const reason = await agent.stopped;
    expect(reason?.code).toBe('UNAUTHORIZED');
    expect(reason?.message).toContain('was revoked');
    expect(lines.some((l) => l.msg === 'relay registration stopped')).toBe(true);

    const error = await rejection(machine.health());
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('no longer enrolled');
    expect(relay.status().map((e) => e.name)).not.toContain('revoked-env');
    // The daemon itself keeps running what it runs.
    expect((await other.daemon.kernel.machine('local').exec.get(running.id)).status).toBe('running');
    await machine.close();
    await other.close();
  });
});

it('a cloud machine works with credentials from files, and refuses group-readable ones', async () => {
  const dir = await tempDir();
  const { credential } = await relay.enroll('client', 'from-files');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'relay.token'), `${credential}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'daemon.token'), `${cloud.token}\n`);
  const { chmod } = await import('node:fs/promises');
  // chmod, not writeFile's mode: a daemon in this process runs with umask 077.
  await chmod(join(dir, 'daemon.token'), 0o640);
  const { CloudTransport } = await import('./index.js');
  const config = { name: 'gpu1', transport: 'cloud', relay: relay.url, fingerprint: cloud.identity.fingerprint, relay_token_file: join(dir, 'relay.token'), token_file: join(dir, 'daemon.token') };
  expect((await rejection(new CloudTransport().connect(config))).code).toBe('PERMISSION_DENIED');
  await chmod(join(dir, 'daemon.token'), 0o600);
  const channel = await new CloudTransport().connect(config);
  channel.close();
});
