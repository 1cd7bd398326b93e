// The daemon refuses, before any method runs, everything that is not an authenticated CLI-like
// client; malformed JSON-RPC gets error replies; and a well-behaved client is served throughout.
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { isTetherError, type RemoteMachine } from '@tether/core';
import { connectWs, readToken, remoteMachine, startDaemon, type Daemon, type LogEntry } from './index.js';
import { backends, exchange, rawClient, removeTempDirs, tempDir, upgradeStatus } from '../test/support.js';

const MiB = 1024 * 1024;
let daemon: Daemon;
let token: string;
let good: RemoteMachine;
let port: number;
const logs: LogEntry[] = [];

beforeAll(async () => {
  const root = await tempDir();
  daemon = await startDaemon({
    listen: '127.0.0.1:0',
    dataDir: join(root, 'daemon'),
    plugins: backends(root),
    allowedOrigins: ['https://dash.example'],
    handshakeTimeoutMs: 1_000,
    maxPendingConnections: 4,
    log: (entry) => logs.push(entry),
  });
  token = await readToken(daemon.tokenFile!);
  port = (daemon.address as { port: number }).port;
  good = remoteMachine(daemon.url, { token, name: 'good' });
  expect((await good.health()).ok).toBe(true);
});
afterAll(async () => {
  await good?.close();
  await daemon?.close();
  await removeTempDirs();
});

/** Runs `bad` while the well-behaved client keeps calling; both must finish, the good one served. */
async function whileGoodClientServes<T>(bad: () => Promise<T>): Promise<T> {
  let answers = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop || answers === 0) {
      const health = await good.health();
      if (health.ok) answers++;
    }
  })();
  try {
    return await bad();
  } finally {
    stop = true;
    await loop;
    expect(answers).toBeGreaterThan(0);
  }
}

const auth = () => ({ Authorization: `Bearer ${token}` });
const url = (path = '/') => `ws://127.0.0.1:${port}${path}`;

describe('refused before the upgrade', () => {
  it('no token: 401', async () => {
    expect(await whileGoodClientServes(() => upgradeStatus(url(), {}))).toBe(401);
  });

  it('a wrong token, of the same or another length, or another scheme: 401', async () => {
    const wrong = token.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
    expect(await whileGoodClientServes(() => upgradeStatus(url(), { Authorization: `Bearer ${wrong}` }))).toBe(401);
    expect(await upgradeStatus(url(), { Authorization: `Bearer ${token}x` })).toBe(401);
    expect(await upgradeStatus(url(), { Authorization: `Basic ${Buffer.from(`u:${token}`).toString('base64')}` })).toBe(401);
    expect(await upgradeStatus(url(), { Authorization: token })).toBe(401);
  });

  it('connectWs reports 401 as UNAUTHORIZED "unauthorized: …"', async () => {
    const error = await connectWs(daemon.url, { token: 'not-the-token-at-all' }).catch((e: unknown) => e);
    expect(isTetherError(error, 'UNAUTHORIZED')).toBe(true);
    expect((error as Error).message).toMatch(/^unauthorized: /);
    expect((error as Error).message).not.toContain('not-the-token-at-all');
  });

  it('the token in the query string, even the right one: refused', async () => {
    expect(await whileGoodClientServes(() => upgradeStatus(url(`/?token=${token}`), {}))).toBe(400);
    expect(await upgradeStatus(url(`/?access_token=${token}`), {})).toBe(400);
    expect(await upgradeStatus(url(`/?token=${token}`), auth())).toBe(400);
  });

  it('a browser Origin not on the allow-list: 403; an allowed one passes', async () => {
    expect(await whileGoodClientServes(() => upgradeStatus(url(), { ...auth(), Origin: 'https://evil.example' }))).toBe(403);
    expect(await upgradeStatus(url(), { ...auth(), Origin: 'null' })).toBe(403);
    expect(await upgradeStatus(url(), { ...auth(), Origin: 'https://dash.example' })).toBe(101);
  });

  it('a Host that is not this daemon (DNS rebinding): 403; localhost passes', async () => {
    expect(await whileGoodClientServes(() => upgradeStatus(url(), { ...auth(), Host: `rebind.evil.example:${port}` }))).toBe(403);
    expect(await upgradeStatus(url(), { ...auth(), Host: `localhost:${port}` })).toBe(101);
    expect(await upgradeStatus(url(), { ...auth(), Host: `127.0.0.1:${port}` })).toBe(101);
  });

  it('a plain HTTP request gets 426 and no method', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/`, { headers: auth() });
    expect(response.status).toBe(426);
  });

  it('drops connections that never finish their handshake, and caps how many may be pending', async () => {
    const closed = (socket: Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const slow: Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // and never the rest
      slow.push(socket);
    }
    const slowGone = Promise.all(slow.map(closed));
    await whileGoodClientServes(async () => {
      // Over the limit: dropped at once.
      const extra = tcpConnect(port, '127.0.0.1');
      extra.on('error', () => undefined);
      await closed(extra);
      // The pending ones are dropped at their deadline.
      await slowGone;
    });
    expect(logs.some((l) => l.msg === 'connection dropped: too many connections still in their handshake')).toBe(true);
    expect(logs.some((l) => l.msg === 'connection dropped: handshake not completed in time')).toBe(true);
    expect(await upgradeStatus(url(), auth())).toBe(101);
  });
});

describe('an authenticated client sending garbage', () => {
  let raw: WebSocket;
  beforeAll(async () => {
    raw = await rawClient(url(), token);
  });
  afterAll(() => raw.terminate());

  const rpcError = async (message: string) => {
    const reply = (await whileGoodClientServes(() => exchange(raw, message))) as { error?: { code: number; message: string } } | unknown[];
    return Array.isArray(reply) ? reply : reply.error;
  };

  it('bad JSON: -32700', async () => {
    expect(await rpcError('{"jsonrpc":"2.0","id":1,')).toMatchObject({ code: -32700 });
  });

  it('a batch of 10^5 requests: an error', async () => {
    const batch = JSON.stringify(Array.from({ length: 100_000 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'daemon/health' })));
    expect(await rpcError(batch)).toMatchObject({ code: -32600, message: expect.stringMatching(/batch/) });
  });

  it('10^5-deep nesting: an error', async () => {
    const deep = `{"jsonrpc":"2.0","id":1,"method":"exec/get","params":{"id":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
    expect(await rpcError(deep)).toMatchObject({ code: -32600, message: expect.stringMatching(/nested/) });
  });

  it('an unknown method: -32601', async () => {
    expect(await rpcError('{"jsonrpc":"2.0","id":7,"method":"daemon/selfDestruct","params":{}}')).toMatchObject({ code: -32601 });
  });

  it('wrong param types: -32602', async () => {
    expect(await rpcError('{"jsonrpc":"2.0","id":8,"method":"exec/get","params":{"id":42}}')).toMatchObject({ code: -32602 });
    expect(await rpcError('{"jsonrpc":"2.0","id":9,"method":"exec/list","params":{"limit":"many"}}')).toMatchObject({ code: -32602 });
  });

  it('the same connection still gets answers after all that', async () => {
    const reply = (await exchange(raw, '{"jsonrpc":"2.0","id":10,"method":"daemon/health","params":{}}')) as { result: { ok: boolean } };
    expect(reply.result.ok).toBe(true);
  });

  it('a frame over the size cap closes that connection with 1009, and only that one', async () => {
    const big = await rawClient(url(), token);
    const code = await whileGoodClientServes(
      () =>
        new Promise<number>((resolve) => {
          big.on('close', (c) => resolve(c));
          big.on('error', () => undefined);
          big.send('x'.repeat(16 * MiB + 1));
        }),
    );
    expect(code).toBe(1009);
    expect((await exchange(raw, '{"jsonrpc":"2.0","id":11,"method":"daemon/health","params":{}}')) as object).toMatchObject({ result: { ok: true } });
  });
});

it('serves new clients afterwards, and never logged the token', async () => {
  const fresh = remoteMachine(daemon.url, { token, name: 'fresh' });
  try {
    const run = await fresh.exec.start({ argv: ['echo', 'still here'] });
    expect((await fresh.exec.wait(run.id)).exitCode).toBe(0);
  } finally {
    await fresh.close();
  }
  expect(logs.filter((l) => l.msg === 'connection refused').length).toBeGreaterThanOrEqual(10);
  // The well-behaved client kept its one connection through all of it.
  expect(good.connections).toBe(1);
  expect(JSON.stringify(logs)).not.toContain(token);
});
