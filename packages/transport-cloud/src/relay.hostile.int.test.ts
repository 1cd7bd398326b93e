// A hostile relay: a real relay whose tap records every forwarded message and can alter, replay
// or drop them, and whose operator can pair a client with another daemon. The client and the
// daemon run TLS 1.3 end to end, so the relay sees no plaintext, a tampered or replayed record
// breaks the session before any command runs, and the wrong daemon fails the pinned fingerprint.
import { randomBytes } from 'node:crypto';
import { access, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RemoteMachine } from '@tether/core';
import { dialSession } from './relayDial.js';
import { connectCloud, type RelayServer, type RelayTap, type TappedMessage } from './index.js';
import { clientOf, eventually, rejection, removeTempDirs, startCloudDaemon, startRelay, tempDir, type CloudDaemon } from '../test/support.js';

let relay: RelayServer;
let cloud: CloudDaemon;
let root: string;
let tap: RelayTap = () => undefined;
const recorded: TappedMessage[] = [];

beforeAll(async () => {
  root = await tempDir();
  relay = await startRelay({
    tap: (message) => {
      recorded.push({ ...message, data: Buffer.from(message.data) });
      return tap(message);
    },
  });
  cloud = await startCloudDaemon(relay, 'box', { root });
});
afterAll(async () => {
  await cloud?.close();
  await relay?.close();
  await removeTempDirs();
});

const exists = (path: string) => access(path).then(() => true, () => false);
const executions = async () => (await cloud.daemon.kernel.machine('local').exec.list({ limit: 1000 })).items.length;

async function machine(options: { giveUpAfterMs?: number } = {}): Promise<RemoteMachine> {
  return clientOf(relay, 'box', cloud, { giveUpAfterMs: options.giveUpAfterMs ?? 1_000 });
}

it('the relay sees none of the plaintext: not the command, its output, nor the daemon token', async () => {
  recorded.length = 0;
  const marker = `MARKER-${randomBytes(8).toString('hex')}`;
  const m = await machine();
  const run = await m.exec.start({ command: `echo ${marker}-out; echo ${marker}-err >&2` });
  const done = await m.exec.wait(run.id);
  const logs = await m.exec.logs(run.id, { streams: ['stdout', 'stderr'] });
  await m.close();
  expect(done.exitCode).toBe(0);
  expect(logs.lines.map((l) => l.line)).toEqual([`${marker}-out`, `${marker}-err`]);

  const sessions = new Set(recorded.map((r) => r.session));
  expect(sessions.size).toBeGreaterThanOrEqual(1);
  const all = Buffer.concat(recorded.map((r) => r.data));
  expect(all.length).toBeGreaterThan(1000);
  for (const needle of [marker, cloud.token, 'exec/start', 'daemon/hello', 'Bearer', 'Upgrade: websocket', 'OutputProduced']) {
    expect(all.includes(Buffer.from(needle)), needle).toBe(false);
  }
  // What it forwards is TLS: every session starts with a handshake record (content type 22).
  for (const session of sessions) {
    const first = recorded.find((r) => r.session === session && r.direction === 'to-daemon')!;
    expect(first.data[0]).toBe(0x16);
  }
});

it('an altered frame breaks the session with an error, and the command does not run', async () => {
  const m = await machine();
  await m.health(); // the session is up
  const before = await executions();
  const witness = join(root, 'altered-ran');
  tap = ({ direction, data }) => {
    if (direction !== 'to-daemon') return;
    const altered = Buffer.from(data);
    altered[altered.length - 1] = altered[altered.length - 1]! ^ 0x01;
    return altered;
  };
  const error = await rejection(m.exec.start({ command: `touch ${witness}` }));
  tap = () => undefined;
  expect(['CONNECTION_LOST', 'OUTCOME_UNKNOWN']).toContain(error.code);
  await m.close();
  expect(await exists(witness)).toBe(false);
  expect(await executions()).toBe(before);
});

it('a replayed frame breaks the session, and replaying a recorded session to the daemon runs nothing', async () => {
  // A session that ran a command, recorded.
  recorded.length = 0;
  const witness = join(root, 'replayed-ran');
  const m = await machine();
  const run = await m.exec.start({ command: `echo again >> ${witness}` });
  await m.exec.wait(run.id);
  await m.close();
  const session = recorded[0]!.session;
  const toDaemon = recorded.filter((r) => r.session === session && r.direction === 'to-daemon').map((r) => r.data);
  await rm(witness);
  const before = await executions();

  // 1. Within a live session: a message sent twice. The original is carried out once; the
  // copy fails TLS's record check (its sequence number is spent) and the daemon hangs up.
  const lines: Array<Record<string, unknown>> = [];
  await (await cloud.restartAgent({ log: (line) => lines.push(line) })).when('registered');
  const live = await machine();
  await live.health();
  expect(live.connections).toBe(1);
  let replayed = false;
  tap = ({ direction, data }) => {
    if (direction !== 'to-daemon' || replayed) return;
    replayed = true;
    return [data, data];
  };
  await live.exec.start({ command: `echo again >> ${witness}` }).catch(() => undefined);
  // The session broke (the client made a new one to retry its idempotent start) on a TLS record error.
  await eventually(() => live.connections >= 2, 5_000, 'a new session');
  expect(lines.find((l) => l['msg'] === 'session through the relay failed')?.['error']).toMatch(/BAD_RECORD_MAC|DECRYPT/);
  tap = () => undefined;
  await eventually(async () => (await exists(witness)) && (await readFile(witness, 'utf8')) === 'again\n', 5_000, 'the one run');
  await live.close();
  await rm(witness);
  const afterLive = await executions();
  expect(afterLive).toBe(before + 1);

  // 2. The whole recorded client side played into a new pairing with the daemon.
  const { credential } = await relay.enroll('client', 'replayer');
  const leg = await dialSession(relay.url, '/v1/environments/box/connect', { credential, timeoutMs: 10_000 });
  if (!('socket' in leg)) throw new Error('the replayer was not paired');
  const closed = new Promise<void>((resolve) => leg.socket.once('close', () => resolve()));
  leg.socket.on('error', () => undefined);
  leg.socket.resume(); // read what comes back (a TLS alert, then the end), or 'close' never comes
  for (const data of toDaemon) leg.socket.write(data);
  await closed; // the daemon's TLS refuses the stale handshake and hangs up

  expect(await exists(witness)).toBe(false);
  expect(await executions()).toBe(afterLive);
});

it('a relay that pairs the client with another daemon is refused by the fingerprint', async () => {
  // The operator gives the environment's identity to an impostor: a rotated credential for "box" in another daemon's hands.
  const impostorRoot = await tempDir();
  const { credential } = await relay.enroll('environment', 'box', { rotate: true });
  const impostor = await startCloudDaemon(relay, 'box', { root: impostorRoot, credential });
  await eventually(() => relay.status().find((e) => e.name === 'box')?.online === true, 5_000, 'impostor registered');
  expect(impostor.identity.fingerprint).not.toBe(cloud.identity.fingerprint);

  const { credential: client } = await relay.enroll('client', 'victim');
  const error = await rejection(
    connectCloud({ relay: relay.url, environment: 'box', relayToken: client, token: cloud.token, fingerprint: cloud.identity.fingerprint, machine: 'box' }),
  );
  expect(error.code).toBe('UNAUTHORIZED');
  expect(error.details['reason']).toBe('fingerprint-changed');
  expect(error.message).toContain(impostor.identity.fingerprint);
  expect(error.message).toContain(`not the pinned ${cloud.identity.fingerprint}`);
  // Nothing reached the impostor: not even the token (its daemon saw no client).
  expect(await impostor.daemon.kernel.machine('local').exec.list({ limit: 10 }).then((p) => p.items.length)).toBe(0);
  await impostor.close();
});
