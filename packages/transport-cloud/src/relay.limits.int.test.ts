// The relay's limits and its resilience to bad input: a daemon that never answers pairings, too
// many pairings waiting, garbage on the socket; and the agent's backoff resetting after a
// healthy registration.
import { connect } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CuttableProxy } from '@tether/core/testing';
import { connectCloud, loadOrCreateIdentity, RelayAgent, type LogEntry, type RelayServer } from './index.js';
import { eventually, rejection, removeTempDirs, startRelay, tempDir } from '../test/support.js';

let relay: RelayServer;
let client: string;

beforeAll(async () => {
  relay = await startRelay({ pairTimeoutMs: 300, maxPendingPairs: 2 });
  client = (await relay.enroll('client', 'probe')).credential;
});
afterAll(async () => {
  await relay?.close();
  await removeTempDirs();
});

/** A registration that ignores every pairing asked of it. */
async function silentDaemon(environment: string): Promise<WebSocket> {
  const { credential } = await relay.enroll('environment', environment);
  const ws = new WebSocket(`${relay.url}/v1/environments/${environment}/register`, { headers: { Authorization: `Bearer ${credential}` } });
  await new Promise((resolve, reject) => ws.once('message', resolve).once('error', reject));
  return ws;
}

const connectTo = (environment: string) =>
  connectCloud({ relay: relay.url, environment, relayToken: client, token: 'f'.repeat(64), fingerprint: `SHA256:${'A'.repeat(43)}`, handshakeTimeoutMs: 2_000 });

it('a daemon that does not answer a pairing: the client is told in time, and the relay forgets it', async () => {
  const ws = await silentDaemon('mute');
  const error = await rejection(connectTo('mute'));
  expect(error.code).toBe('CONNECTION_LOST');
  expect(error.message).toContain('did not answer the pairing in time');
  ws.terminate();
});

it('too many pairings waiting for one environment are refused, the others wait their turn', async () => {
  const ws = await silentDaemon('busy');
  const attempts = [connectTo('busy'), connectTo('busy'), connectTo('busy')].map((p) => rejection(p));
  const errors = await Promise.all(attempts);
  const messages = errors.map((e) => e.message);
  expect(messages.filter((m) => m.includes('too many pairings waiting'))).toHaveLength(1);
  expect(messages.filter((m) => m.includes('did not answer the pairing in time'))).toHaveLength(2);
  ws.terminate();
});

it('garbage on the socket and malformed requests leave the relay serving', async () => {
  for (const garbage of ['\x16\x03\x01 not http at all\r\n\r\n', 'GET /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n', `GET /${'a'.repeat(100_000)} HTTP/1.1\r\n\r\n`]) {
    const socket = connect(relay.address.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume();
    await new Promise<void>((resolve) => socket.write(garbage, () => resolve()));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  }
  const upgrade = new WebSocket(`${relay.url}/v1/environments/x%2F..%2Fy/register`, { headers: { Authorization: 'Bearer tre_wrongwrongwrongwrongwrong' } });
  const status = await new Promise<number>((resolve) => upgrade.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
  expect([400, 401, 404]).toContain(status);
  expect(relay.status().length).toBeGreaterThan(0);
});

it("the agent's backoff starts over after a healthy registration", async () => {
  const proxy = await CuttableProxy.start({ host: '127.0.0.1', port: relay.address.port });
  const { credential } = await relay.enroll('environment', 'flappy');
  const dir = await tempDir();
  const lines: LogEntry[] = [];
  let refuse = true;
  proxy.onData = () => (refuse ? 'cut' : undefined);
  const agent = RelayAgent.start({
    relay: `ws://127.0.0.1:${proxy.port}`,
    environment: 'flappy',
    credential,
    identity: await loadOrCreateIdentity(dir),
    target: join(dir, 'none.sock'),
    backoff: { initialDelayMs: 8, maxDelayMs: 64, healthyAfterMs: 0 },
    log: (line) => lines.push(line),
  });
  const ceilings = () => lines.filter((l) => l.msg === 'retrying').map((l) => l['ceilingMs']);
  await eventually(() => ceilings().length >= 3, 10_000, 'three failed attempts');
  refuse = false;
  await agent.when('registered');
  const failed = ceilings().length;
  expect(ceilings()[failed - 1]).toBeGreaterThan(8);
  proxy.cutAll();
  await eventually(() => ceilings().length > failed, 10_000, 'a retry after the drop');
  expect(ceilings()[failed]).toBe(8);
  await agent.when('registered');
  agent.close();
  await proxy.close();
});
