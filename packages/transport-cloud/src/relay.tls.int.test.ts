// A relay serving wss:// with a certificate from a private CA: daemons, clients and the
// operator trust it through relayCa; without it they refuse the relay.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cloudMachine, connectCloud, RelayAdmin, RelayServer } from './index.js';
import { rejection, removeTempDirs, startCloudDaemon, tempDir, type CloudDaemon } from '../test/support.js';

let relay: RelayServer;
let cloud: CloudDaemon;
let ca: Buffer;

beforeAll(async () => {
  const dir = await tempDir();
  const cert = join(dir, 'relay.crt');
  const key = join(dir, 'relay.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=relay.test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
  ca = await readFile(cert);
  relay = await RelayServer.start({ listen: '127.0.0.1:0', dataDir: join(dir, 'relay'), tls: { cert: ca, key: await readFile(key) } });
  cloud = await startCloudDaemon(relay, 'tls-env', { root: dir, agent: { relayCa: ca } });
});
afterAll(async () => {
  await cloud?.close();
  await relay?.close();
  await removeTempDirs();
});

it('serves wss:// to daemons, clients and the operator that trust its CA', async () => {
  expect(relay.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
  const { credential } = await relay.enroll('client', 'tls-client');
  const machine = cloudMachine({ relay: relay.url, environment: 'tls-env', relayToken: credential, token: cloud.token, fingerprint: cloud.identity.fingerprint, relayCa: ca });
  const run = await machine.exec.start({ command: 'echo over wss' });
  await machine.exec.wait(run.id);
  expect((await machine.exec.logs(run.id)).lines.map((l) => l.line)).toEqual(['over wss']);
  await machine.close();
  const admin = new RelayAdmin({ relay: relay.url, adminToken: (await readFile(relay.adminTokenFile!, 'utf8')).trim(), ca });
  expect((await admin.status('online')).map((e) => e.name)).toEqual(['tls-env']);
});

it('a client that does not trust the relay certificate refuses it', async () => {
  const { credential } = await relay.enroll('client', 'untrusting');
  const error = await rejection(connectCloud({ relay: relay.url, environment: 'tls-env', relayToken: credential, token: cloud.token, fingerprint: cloud.identity.fingerprint }));
  expect(error.code).toBe('UNAUTHORIZED');
  expect(error.message).toMatch(/the relay's TLS certificate is not trusted/);
  const admin = new RelayAdmin({ relay: relay.url, adminToken: 'x'.repeat(32) });
  expect((await rejection(admin.status())).code).toBe('UNAUTHORIZED');
});

it('refuses to listen beyond loopback without TLS', async () => {
  const error = await rejection(RelayServer.start({ listen: '0.0.0.0:0', dataDir: join(await tempDir(), 'r') }));
  expect(error.code).toBe('INVALID_ARGUMENT');
  expect(error.message).toContain('loopback only');
});
