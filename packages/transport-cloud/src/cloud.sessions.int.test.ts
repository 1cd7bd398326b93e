// Many clients on one daemon at once, each on its own pairing; and the registration's keepalive
// noticing a relay that went silent (a frozen connection, not a closed one).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CuttableProxy } from '@tether/core/testing';
import type { RelayServer } from './index.js';
import { clientOf, eventually, removeTempDirs, startCloudDaemon, startRelay, tempDir, type CloudDaemon } from '../test/support.js';

let relay: RelayServer;
let cloud: CloudDaemon;
let proxy: CuttableProxy;

beforeAll(async () => {
  const root = await tempDir();
  relay = await startRelay();
  proxy = await CuttableProxy.start({ host: '127.0.0.1', port: relay.address.port });
  cloud = await startCloudDaemon(relay, 'shared', { root, relayUrl: `ws://127.0.0.1:${proxy.port}`, agent: { pingIntervalMs: 200 } });
});
afterAll(async () => {
  await cloud?.close();
  await proxy?.close();
  await relay?.close();
  await removeTempDirs();
});

it('eight clients at once, each on its own session, each gets its own output', async () => {
  const machines = await Promise.all(Array.from({ length: 8 }, (_, i) => clientOf(relay, 'shared', cloud, { client: `c${i}` })));
  const results = await Promise.all(
    machines.map(async (m, i) => {
      const run = await m.exec.start({ command: `for j in 1 2 3; do echo client-${i}-$j; sleep 0.05; done` });
      await m.exec.wait(run.id);
      return (await m.exec.logs(run.id, { tailLines: 10 })).lines.map((l) => l.line);
    }),
  );
  results.forEach((lines, i) => expect(lines).toEqual([1, 2, 3].map((j) => `client-${i}-${j}`)));
  expect(relay.status().find((e) => e.name === 'shared')?.sessions).toBe(8);
  expect(cloud.agent.sessions).toBe(8);
  await Promise.all(machines.map((m) => m.close()));
  await eventually(() => relay.sessions === 0 && cloud.agent.sessions === 0, 5_000, 'the sessions to close');
});

it('a relay that stops answering is noticed by the keepalive, and the registration is made again', async () => {
  const before = cloud.agent.registrations;
  // Swallow everything on the connections open now: the relay looks alive to TCP but says nothing.
  let freezing = true;
  proxy.onData = (_direction, _chunk, connection) => {
    connection.state['frozen'] ??= freezing;
    return connection.state['frozen'] ? 'drop' : undefined;
  };
  await cloud.agent.when('waiting');
  freezing = false; // new connections pass
  await cloud.agent.when('registered');
  expect(cloud.agent.registrations).toBe(before + 1);
  proxy.onData = () => undefined;
});

it('a session already paired lives on when the registration drops and is made again', async () => {
  const machine = await clientOf(relay, 'shared', cloud, { client: 'steady' });
  await machine.health();
  const connections = machine.connections;
  const before = cloud.agent.registrations;
  // Cut the registration only: the connection on which the agent sends a WebSocket ping (0x89)
  // in the clear; a session leg carries nothing but TLS records (0x16, 0x17).
  let cut = false;
  proxy.onData = (direction, chunk) => {
    if (cut || direction !== 'up' || chunk[0] !== 0x89) return;
    cut = true;
    return 'cut';
  };
  await eventually(() => cloud.agent.registrations > before, 10_000, 'the registration to be made again');
  proxy.onData = () => undefined;
  const run = await machine.exec.start({ command: 'echo still here' });
  await machine.exec.wait(run.id);
  expect((await machine.exec.logs(run.id)).lines.map((l) => l.line)).toEqual(['still here']);
  expect(machine.connections).toBe(connections);
  await machine.close();
});

