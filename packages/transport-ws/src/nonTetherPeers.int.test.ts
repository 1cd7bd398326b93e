// connectWs against peers that are not a tether daemon: each ends in a CONNECTION_LOST that says
// what answered (details.peer), never in an exception thrown from inside Node's HTTP client —
// also over a byte stream that is not a socket (as an SSH channel is).
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from '@tether/core/testing';
import { connectWs, identifyPeer } from './index.js';

const servers: Server[] = [];
const sockets = new Set<{ destroy(): void }>();
const ports: Record<string, number> = {};
const TOKEN = 't'.repeat(43);

function listen(name: string, server: Server): Promise<void> {
  servers.push(server);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => ((ports[name] = (server.address() as { port: number }).port), resolve())));
}

beforeAll(async () => {
  await listen(
    'codexd',
    createHttpServer((req, res) => {
      if (req.url === '/health') return void res.setHeader('content-type', 'application/json').end(JSON.stringify({ ok: true, version: 'v0.3.1', time: 'now', go: 'go1.22.5' }));
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
    }),
  );
  await listen('http', createHttpServer((_req, res) => res.end('<html></html>')));
  await listen('garbage', createServer((socket) => socket.on('error', () => undefined).end(Buffer.from([0, 0xff, 10, 13, 10, 13]))));
  await listen('reset', createServer((socket) => socket.on('error', () => undefined).resetAndDestroy()));
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A byte stream to `port` that is not a net.Socket (no setTimeout/setNoDelay), like an SSH channel. */
async function plainStream(port: number): Promise<Duplex> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return Duplex.from({ readable: socket, writable: socket });
}

describe('peers that are not tether', () => {
  it.each([
    ['codexd', 'codexd', /served by codexd, not tether/],
    ['http', 'http', /answered HTTP 200 .*not a tether daemon/],
    ['garbage', 'not-http', /does not speak HTTP/],
    ['reset', 'reset', /connection reset by peer/],
  ])('%s over TCP: CONNECTION_LOST, details.peer %s', async (name, peer, message) => {
    const error = await rejection(connectWs(`ws://127.0.0.1:${ports[name]}`, { token: TOKEN }));
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', details: expect.objectContaining({ peer }) });
    expect(error.message).toMatch(message);
  });

  it.each([
    ['codexd', 'codexd'],
    ['http', 'http'],
    ['garbage', 'not-http'],
  ])('%s over a stream that is not a socket: the same, no crash', async (name, peer) => {
    const port = ports[name]!;
    const error = await rejection(connectWs(`ws://127.0.0.1:${port}/`, { token: TOKEN, stream: await plainStream(port), probe: () => plainStream(port) }));
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', details: expect.objectContaining({ peer }) });
  });

  it('identifyPeer knows codexd by its health answer and nothing else', async () => {
    expect(await identifyPeer(() => plainStream(ports['codexd']!))).toBe('codexd');
    expect(await identifyPeer(() => plainStream(ports['http']!))).toBeUndefined();
    expect(await identifyPeer(() => plainStream(ports['garbage']!))).toBeUndefined();
    expect(await identifyPeer(() => Promise.reject(new Error('no route')))).toBeUndefined();
  });
});
