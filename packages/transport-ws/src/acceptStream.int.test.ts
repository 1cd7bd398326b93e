// WsListener.accept: a stream already connected in this process (what the cloud transport's
// relay agent hands over once it has decrypted a session) is served like any client of the
// listener: the token is checked, it takes a connection slot, it must finish its handshake in
// time, and a closed listener takes nothing.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { firstValueFrom, filter } from 'rxjs';
import type { Channel } from '@tether/core';
import { connectWs, WsListener, type ConnectionInfo } from './index.js';
import { eventually, removeTempDirs, tempDir } from '../test/support.js';

const token = 'a'.repeat(64);
let pairs: Server;
const waiting: Array<(socket: Socket) => void> = [];
const served: Array<{ channel: Channel; info: ConnectionInfo }> = [];

/** Two connected sockets: the client's end, and the end the test hands to `accept`. */
async function socketPair(): Promise<{ client: Socket; server: Socket }> {
  const server = new Promise<Socket>((resolve) => waiting.push(resolve));
  const address = pairs.address() as { port: number };
  const client = connect(address.port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  return { client, server: await server };
}

/** A listener whose channels answer every text message with `pong`. */
async function listener(extra: Partial<Parameters<typeof WsListener.listen>[0]> = {}): Promise<WsListener> {
  return WsListener.listen({
    listen: join(await tempDir(), 'daemon.sock'),
    token,
    onChannel(channel, info) {
      served.push({ channel, info });
      channel.messages$.subscribe({ next: () => channel.send('pong'), error: () => undefined });
    },
    ...extra,
  });
}

async function ping(channel: Channel): Promise<string> {
  const reply = firstValueFrom(channel.messages$.pipe(filter((m): m is string => typeof m === 'string')));
  channel.send('ping');
  return reply;
}

beforeAll(async () => {
  pairs = createServer((socket) => waiting.shift()?.(socket));
  await new Promise<void>((resolve) => pairs.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await new Promise((resolve) => pairs.close(resolve));
  await removeTempDirs();
});

it('serves an accepted stream with the token, under the source it was given', async () => {
  const l = await listener();
  const { client, server } = await socketPair();
  l.accept(server, { source: 'relay' });
  const channel = await connectWs('ws://localhost/', { stream: client, token });
  expect(await ping(channel)).toBe('pong');
  expect(served.at(-1)?.info.remote).toBe('relay');
  expect(l.connections).toBe(1);
  channel.close();
  await l.close();
});

it('refuses an accepted stream with a wrong token before the upgrade', async () => {
  const l = await listener();
  const { client, server } = await socketPair();
  l.accept(server);
  const error = await connectWs('ws://localhost/', { stream: client, token: 'b'.repeat(64) }).then(
    () => undefined,
    (e: unknown) => e as { code?: string; details?: Record<string, unknown> },
  );
  expect(error?.code).toBe('UNAUTHORIZED');
  expect(l.connections).toBe(0);
  await l.close();
});

it('accepted streams take connection slots: over maxConnections the quietest is closed with 1013', async () => {
  const l = await listener({ maxConnections: 2 });
  const channels: Channel[] = [];
  const ends: Array<Promise<unknown>> = [];
  for (let i = 0; i < 3; i++) {
    const { client, server } = await socketPair();
    l.accept(server, { source: 'relay' });
    const channel = await connectWs('ws://localhost/', { stream: client, token });
    // Each reader subscribes once: the first message answers the ping, the end tells how it closed.
    ends.push(
      new Promise((resolve) =>
        channel.messages$.subscribe({ error: (e: { details?: Record<string, unknown> }) => resolve(e.details?.['closeCode']), complete: () => resolve('complete') }),
      ),
    );
    channels.push(channel);
    await eventually(() => l.connections === Math.min(i + 1, 2), 5_000, 'the connection to count');
  }
  // The first one was the quietest when the third came in.
  expect(await ends[0]).toBe(1013);
  expect(l.connections).toBe(2);
  for (const channel of channels) channel.close();
  await l.close();
});

it('an accepted stream that never finishes its handshake is dropped at the deadline', async () => {
  const l = await listener({ handshakeTimeoutMs: 200 });
  const { client, server } = await socketPair();
  const closed = new Promise((resolve) => client.once('close', resolve));
  client.on('error', () => undefined);
  client.resume();
  l.accept(server);
  client.write('GET / HTTP/1.1\r\nHost: localhost\r\n'); // and never the rest
  await closed;
  expect(l.connections).toBe(0);
  await l.close();
});

it('after close, an accepted stream is destroyed; a wss:// listener accepts none', async () => {
  const l = await listener();
  await l.close();
  const { client, server } = await socketPair();
  const closed = new Promise((resolve) => client.once('close', resolve));
  client.on('error', () => undefined);
  client.resume();
  l.accept(server);
  await closed;
  expect(server.destroyed).toBe(true);

  const dir = await tempDir();
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], {
    stdio: 'ignore',
  });
  const secure = await WsListener.listen({ listen: '127.0.0.1:0', token, onChannel: () => undefined, tls: { cert: await readFile(cert), key: await readFile(key) } });
  const other = await socketPair();
  expect(() => secure.accept(other.server)).toThrow(/without TLS/);
  other.client.destroy();
  other.server.destroy();
  await secure.close();
});
