// Cut the connection between a RemoteMachine and a real daemon at random points while it follows
// an execution: the client reconnects by itself and the output it reassembles is byte-identical,
// with contiguous seqs and no duplicate.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RemoteMachine } from '@tether/core';
import { followStdout } from '@tether/core/testing';
import { readToken, remoteMachine, startDaemon, type Daemon } from './index.js';
import { backends, CuttableProxy, eventually, removeTempDirs, tempDir } from '../test/support.js';

const MiB = 1024 * 1024;
let dir: string;
let daemon: Daemon;
let proxy: CuttableProxy;
let machine: RemoteMachine;

beforeAll(async () => {
  dir = await tempDir();
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(dir, 'daemon'), plugins: backends(dir) });
  proxy = await CuttableProxy.start({ host: '127.0.0.1', port: (daemon.address as { port: number }).port });
  machine = remoteMachine(`ws://127.0.0.1:${proxy.port}`, {
    token: await readToken(daemon.tokenFile!),
    name: 'behind-proxy',
    reconnect: { initialDelayMs: 5, maxDelayMs: 50 },
  });
});
afterAll(async () => {
  await machine?.close();
  await proxy?.close();
  await daemon?.close();
  await removeTempDirs();
});

/** Cuts each connection once it has carried a random number of bytes to the client in [min, max). */
function cutRandomly(min: number, max: number, most: number): () => number {
  let cuts = 0;
  const limit = new WeakMap<object, number>();
  proxy.onData = (direction, _chunk, connection) => {
    if (direction !== 'down' || cuts >= most) return;
    if (!limit.has(connection.state)) limit.set(connection.state, min + Math.floor(Math.random() * (max - min)));
    if (connection.down >= limit.get(connection.state)!) {
      cuts++;
      return 'cut';
    }
  };
  return () => cuts;
}

it('100 MiB of random output survives 12 cuts byte-identical', async () => {
  const hashFile = join(dir, 'producer.sha256');
  const connectionsBefore = machine.connections;
  const run = await machine.exec.start({ command: `head -c 100M /dev/urandom | tee >(sha256sum > ${hashFile})`, shell: 'bash' });
  const cuts = cutRandomly(256 * 1024, 8 * MiB, 12);
  const received = await followStdout(machine, run.id);
  proxy.onData = () => undefined;

  await eventually(async () => /^[0-9a-f]{64} /.test(await readFile(hashFile, 'utf8').catch(() => '')), 10_000, 'producer hash written');
  const producer = (await readFile(hashFile, 'utf8')).slice(0, 64);
  expect(received.bytes).toBe(100 * MiB);
  expect(received.sha256).toBe(producer);
  expect(cuts()).toBe(12);
  expect(machine.connections - connectionsBefore).toBeGreaterThanOrEqual(12);
  const state = await machine.exec.get(run.id);
  expect(state).toMatchObject({ status: 'finished', exitCode: 0, lastSeq: received.events });
});

it('a slow trickle survives 10 cuts with every line once, in order', async () => {
  const connectionsBefore = machine.connections;
  const run = await machine.exec.start({ command: 'for i in $(seq 1 200); do echo $i; sleep 0.01; done', shell: 'bash' });
  const cuts = cutRandomly(200, 3_000, 10);
  const received = await followStdout(machine, run.id);
  proxy.onData = () => undefined;

  const expected = Array.from({ length: 200 }, (_, i) => `${i + 1}\n`).join('');
  expect(received.bytes).toBe(expected.length);
  expect(received.sha256).toBe(createHash('sha256').update(expected).digest('hex'));
  expect(cuts()).toBe(10);
  expect(machine.connections - connectionsBefore).toBeGreaterThanOrEqual(1);
});
