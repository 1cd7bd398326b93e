// Connection-slot exhaustion, measured against the daemon as a process with its default limits:
// peers that never finish their handshake (or hold idle authenticated connections) must not
// keep a client with the token from connecting. Bounded in count and time, loopback only.
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { firstValueFrom, filter } from 'rxjs';
import { connectWs, readToken } from './index.js';
import { rawClient, removeTempDirs, startDaemonChild, tempDir, type DaemonChild } from '../test/support.js';

let daemon: DaemonChild;
let token: string;
let port: number;

beforeAll(async () => {
  const root = await tempDir();
  daemon = await startDaemonChild(['--listen', '127.0.0.1:0', '--data-dir', join(root, 'daemon'), '--plugin', '@tether/plugin-process']);
  token = await readToken(daemon.tokenFile);
  port = Number(new URL(daemon.url).port);
});
afterAll(async () => {
  daemon?.child.kill('SIGTERM');
  await daemon?.exited;
  await removeTempDirs();
});

/** One legitimate client: connects with the token and gets an answer to daemon/health. */
async function legitimate(): Promise<boolean> {
  try {
    const channel = await connectWs(daemon.url, { token, handshakeTimeoutMs: 5_000 });
    try {
      const reply = firstValueFrom(channel.messages$.pipe(filter((m): m is string => typeof m === 'string')));
      channel.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'daemon/health' }));
      return (JSON.parse(await reply) as { result?: { ok?: boolean } }).result?.ok === true;
    } finally {
      channel.close();
    }
  } catch {
    return false;
  }
}

/** `total` legitimate clients, `parallel` at a time; how many were served. */
async function legitimateClients(total: number, parallel: number): Promise<number> {
  let served = 0;
  for (let done = 0; done < total; done += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, total - done) }, legitimate));
    served += batch.filter(Boolean).length;
  }
  return served;
}

/**
 * Peers that open a connection, start an upgrade request and then drip a header line every
 * 200 ms, never finishing it; each re-opens as soon as it is dropped.
 */
function drippingPeers(count: number, localAddress = '127.0.0.1') {
  let stopped = false;
  let drops = 0;
  let connected = 0;
  const sockets = new Set<Socket>();
  const open = () => {
    if (stopped) return;
    const socket = tcpConnect({ port, host: '127.0.0.1', localAddress });
    sockets.add(socket);
    let timer: NodeJS.Timeout | undefined;
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      connected++;
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
      timer = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
    });
    socket.once('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
      drops++;
      open();
    });
  };
  for (let i = 0; i < count; i++) open();
  return {
    /** Connections made so far (re-opened ones included). */
    get connected() {
      return connected;
    },
    get drops() {
      return drops;
    },
    stop() {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
  };
}

describe('connection slots under attack (daemon process, default limits)', () => {
  it.each([
    ['64 peers from the same address', 64, '127.0.0.1'],
    ['300 peers from another address', 300, '127.0.0.2'],
  ])('%s dripping handshakes do not lock out clients with the token', async (what, count, from) => {
    const attack = drippingPeers(count, from);
    try {
      while (attack.connected < count) await new Promise((resolve) => setImmediate(resolve));
      // Clients keep coming until at least 50 have tried and every attacker was dropped once
      // (past the handshake deadline, or at once over a limit) and came back.
      let tried = 0;
      let served = 0;
      while (tried < 50 || attack.drops < count) {
        served += await legitimateClients(5, 5);
        tried += 5;
      }
      console.info(`[figures] ${what} dripping handshakes: ${served} of ${tried} legitimate clients served during the attack (${attack.drops} attacker drops)`);
      expect(served).toBe(tried);
    } finally {
      attack.stop();
    }
  });

  it('260 idle authenticated connections do not lock out new clients with the token', async () => {
    const idle: WebSocket[] = [];
    let closedByDaemon = 0;
    try {
      for (let i = 0; i < 260; i++) {
        const ws = await rawClient(daemon.url, token).catch(() => undefined);
        if (!ws) continue;
        ws.on('error', () => undefined);
        ws.once('close', (code: number) => {
          if (code === 1013) closedByDaemon++;
        });
        idle.push(ws);
      }
      const served = await legitimateClients(20, 5);
      console.info(`[figures] idle authenticated connections: ${served} of 20 new clients served, ${closedByDaemon} idle connections closed to make room`);
      expect(served).toBe(20);
      expect(closedByDaemon).toBeGreaterThan(0);
    } finally {
      for (const ws of idle) ws.terminate();
    }
  });
});
