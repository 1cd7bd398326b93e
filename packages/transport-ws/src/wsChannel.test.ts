import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { isTetherError, type Channel } from '@tether/core';
import { wsChannel, type KeepaliveOptions } from './wsChannel.js';
import { eventually } from '../test/support.js';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A connected pair of raw sockets and their channels. */
async function pair(keepalive: { server?: KeepaliveOptions; client?: KeepaliveOptions } = {}) {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  servers.push(server);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[WebSocket]>;
  const clientSocket = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  await once(clientSocket, 'open');
  const [serverSocket] = await accepted;
  return {
    serverSocket,
    clientSocket,
    server: wsChannel(serverSocket, keepalive.server ?? { pingIntervalMs: 0 }),
    client: wsChannel(clientSocket, keepalive.client ?? { pingIntervalMs: 0 }),
  };
}

const failureOf = (channel: Channel) =>
  lastValueFrom(channel.messages$, { defaultValue: undefined }).then(
    () => 'completed',
    (error: unknown) => (isTetherError(error) ? `${error.code}: ${error.message}` : String(error)),
  );

describe('wsChannel', () => {
  it('carries text frames as strings and binary frames as bytes, in order, both ways', async () => {
    const { server, client } = await pair();
    const received = firstValueFrom(server.messages$.pipe(take(3), toArray()));
    client.send('{"jsonrpc":"2.0"}');
    client.send(new Uint8Array([1, 2, 3, 255]));
    client.send('é ✓');
    const [text, bytes, unicode] = await received;
    expect(text).toBe('{"jsonrpc":"2.0"}');
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect([...(bytes as Uint8Array)]).toEqual([1, 2, 3, 255]);
    expect(unicode).toBe('é ✓');

    const back = firstValueFrom(client.messages$);
    server.send('pong');
    expect(await back).toBe('pong');
    expect(typeof server.bufferedAmount).toBe('number');
  });

  it('keeps messages that arrive before messages$ is subscribed', async () => {
    const { serverSocket, client, clientSocket } = await pair();
    serverSocket.send('first');
    serverSocket.send('second');
    // Wait until both arrived at the client's socket, then subscribe.
    await new Promise<void>((resolve) => {
      let n = 0;
      clientSocket.on('message', () => ++n === 2 && resolve());
    });
    expect(await firstValueFrom(client.messages$.pipe(take(2), toArray()))).toEqual(['first', 'second']);
  });

  it('completes on a clean close from either side, and refuses to send afterwards', async () => {
    const { server, client } = await pair();
    const serverEnd = failureOf(server);
    const clientEnd = failureOf(client);
    client.close('bye');
    expect(await serverEnd).toBe('completed');
    expect(await clientEnd).toBe('completed');
    expect(() => client.send('late')).toThrow(/connection reset by peer/);
    client.close(); // idempotent
  });

  it('errors with CONNECTION_LOST when the peer vanishes without a close handshake', async () => {
    const { server, clientSocket } = await pair();
    const end = failureOf(server);
    clientSocket.terminate();
    expect(await end).toMatch(/^CONNECTION_LOST: connection reset by peer/);
  });

  it('detects a peer that stops answering pings, and keeps a live one', async () => {
    const live = await pair({ server: { pingIntervalMs: 20, pongTimeoutMs: 60 } });
    let pings = 0;
    live.clientSocket.on('ping', () => pings++);
    let ended = false;
    live.server.messages$.subscribe({ error: () => (ended = true), complete: () => (ended = true) });
    await eventually(() => pings >= 10, 10_000, 'ten pings answered');
    expect(ended).toBe(false);

    const silent = await pair({ server: { pingIntervalMs: 20, pongTimeoutMs: 60 } });
    const end = failureOf(silent.server);
    silent.clientSocket.pause(); // reads nothing, so it answers no ping
    expect(await end).toMatch(/^CONNECTION_LOST: .*no pong within 60 ms/);
  });
});
