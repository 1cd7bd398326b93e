// Cut the connections on both sides of the relay at random points while a client follows an
// execution, then restart the relay itself mid-stream: the daemon re-registers, the client makes
// new pairings and resumes from its last seq, the output is byte-identical and the execution
// never stopped.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RemoteMachine } from '@tether/core';
import { CuttableProxy, followStdout } from '@tether/core/testing';
import { RelayServer } from './index.js';
import { clientOf, eventually, removeTempDirs, startCloudDaemon, tempDir, type CloudDaemon } from '../test/support.js';

const MiB = 1024 * 1024;
let dir: string;
let relayDir: string;
let relay: RelayServer;
let cloud: CloudDaemon;
let clientSide: CuttableProxy;
let daemonSide: CuttableProxy;
let machine: RemoteMachine;

beforeAll(async () => {
  dir = await tempDir();
  relayDir = join(dir, 'relay');
  relay = await RelayServer.start({ listen: '127.0.0.1:0', dataDir: relayDir, pingIntervalMs: 2_000 });
  clientSide = await CuttableProxy.start({ host: '127.0.0.1', port: relay.address.port });
  daemonSide = await CuttableProxy.start({ host: '127.0.0.1', port: relay.address.port });
  cloud = await startCloudDaemon(relay, 'natted', { root: dir, relayUrl: `ws://127.0.0.1:${daemonSide.port}` });
  machine = await clientOf(relay, 'natted', cloud, { relayUrl: `ws://127.0.0.1:${clientSide.port}` });
});
afterAll(async () => {
  await machine?.close();
  await cloud?.close();
  await clientSide?.close();
  await daemonSide?.close();
  await relay?.close();
  await removeTempDirs();
});

/**
 * Cuts connections once they have carried a random number of bytes towards the client in
 * [min, max): client ⇄ relay connections as the relay sends to the client, daemon ⇄ relay
 * session connections as the daemon sends to the relay. Every third cut on the daemon side takes
 * the daemon's registration down with the session. Each cut hits a session of its own: only
 * connections opened since the last cut are cut (the other leg of a session just cut still
 * carries what the relay had in flight, and could reach its limit too). Returns the counts so far.
 */
function cutRandomly(min: number, max: number, most: { client: number; daemon: number }) {
  const cuts = { client: 0, daemon: 0, registrations: 0 };
  const limits = new WeakMap<object, number>();
  const limitOf = (state: object) => {
    if (!limits.has(state)) limits.set(state, min + Math.floor(Math.random() * (max - min)));
    return limits.get(state)!;
  };
  /** Whether the connection was opened since the last cut (on either side). */
  const fresh = (state: Record<string, unknown>) => (state['born'] ??= cuts.client + cuts.daemon) === cuts.client + cuts.daemon;
  clientSide.onData = (direction, _chunk, connection) => {
    const born = fresh(connection.state);
    if (direction !== 'down' || cuts.client >= most.client || !born) return;
    if (connection.down >= limitOf(connection.state)) {
      cuts.client++;
      return 'cut';
    }
  };
  daemonSide.onData = (direction, chunk, connection) => {
    if (connection.state['kind'] === undefined) connection.state['kind'] = chunk.includes('/register') ? 'registration' : 'session';
    const born = fresh(connection.state);
    if (direction !== 'up' || connection.state['kind'] !== 'session' || cuts.daemon >= most.daemon || !born) return;
    if (connection.up >= limitOf(connection.state)) {
      cuts.daemon++;
      if (cuts.daemon % 3 === 0) {
        cuts.registrations++;
        daemonSide.cutAll();
      }
      return 'cut';
    }
  };
  return () => cuts;
}

it('100 MiB of random output survives 24 cuts on both sides of the relay byte-identical', async () => {
  const hashFile = join(dir, 'producer.sha256');
  const connectionsBefore = machine.connections;
  const registrationsBefore = cloud.agent.registrations;
  const run = await machine.exec.start({ command: `head -c 100M /dev/urandom | tee >(sha256sum > ${hashFile})`, shell: 'bash' });
  const cuts = cutRandomly(256 * 1024, 8 * MiB, { client: 12, daemon: 12 });
  const received = await followStdout(machine, run.id);
  clientSide.onData = () => undefined;
  daemonSide.onData = () => undefined;

  await eventually(async () => /^[0-9a-f]{64} /.test(await readFile(hashFile, 'utf8').catch(() => '')), 10_000, 'producer hash written');
  const producer = (await readFile(hashFile, 'utf8')).slice(0, 64);
  expect(received.bytes).toBe(100 * MiB);
  expect(received.sha256).toBe(producer);
  expect(cuts()).toMatchObject({ client: 12, daemon: 12 });
  expect(cuts().registrations).toBeGreaterThanOrEqual(4);
  // Each cut hit its own session; the last one may have come after the client had read all it needed.
  expect(machine.connections - connectionsBefore).toBeGreaterThanOrEqual(23);
  await cloud.agent.when('registered');
  expect(cloud.agent.registrations - registrationsBefore).toBeGreaterThanOrEqual(4);
  expect(await machine.exec.get(run.id)).toMatchObject({ status: 'finished', exitCode: 0, lastSeq: received.events });
});

it('the relay restarted mid-stream: the daemon re-registers, the client resumes, the execution kept running', async () => {
  const run = await machine.exec.start({ command: 'for i in $(seq 1 300); do echo $i; sleep 0.01; done', shell: 'bash' });
  const following = followStdout(machine, run.id);
  await eventually(async () => (await machine.exec.get(run.id)).lastSeq >= 30, 10_000, 'some output');
  const registrations = cloud.agent.registrations;
  const connections = machine.connections;

  const port = relay.address.port;
  await relay.close();
  await cloud.agent.when('waiting');
  // Nobody can reach the daemon now, and its execution goes on.
  expect((await cloud.daemon.kernel.machine('local').exec.get(run.id)).status).toBe('running');
  relay = await RelayServer.start({ listen: `127.0.0.1:${port}`, dataDir: relayDir, pingIntervalMs: 2_000 });

  const received = await following;
  expect(cloud.agent.registrations).toBeGreaterThan(registrations);
  expect(machine.connections).toBeGreaterThan(connections);
  const expected = Array.from({ length: 300 }, (_, i) => `${i + 1}\n`).join('');
  expect(received.bytes).toBe(expected.length);
  expect(received.sha256).toBe(createHash('sha256').update(expected).digest('hex'));
  const state = await machine.exec.get(run.id);
  expect(state).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0, lastSeq: received.events });
  expect(relay.status()).toEqual([expect.objectContaining({ name: 'natted', online: true })]);
});
