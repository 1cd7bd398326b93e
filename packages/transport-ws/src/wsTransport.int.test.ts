import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, isTetherError, RemoteMachine, Transport } from '@tether/core';
import wsPlugin, { connectWs, readToken, startDaemon, WsTransport, type Daemon } from './index.js';
import { backends, removeTempDirs, tempDir } from '../test/support.js';

let daemon: Daemon;
let token: string;
beforeAll(async () => {
  const dir = await tempDir();
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(dir, 'd'), plugins: backends(dir) });
  token = await readToken(daemon.tokenFile!);
});
afterAll(async () => {
  await daemon?.close();
  await removeTempDirs();
});

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: unknown) => (isTetherError(error) ? `${error.code}: ${error.message}` : String(error)),
  );

describe('the plugin', () => {
  it('contributes the ws Transport to a kernel', async () => {
    const kernel = await createKernel({ plugins: [wsPlugin] });
    try {
      expect(kernel.plugins.loaded).toEqual(['@tether/transport-ws']);
      const transports = kernel.container.resolveAll(Transport);
      expect(transports.map((t) => t.name)).toEqual(['ws']);
      expect(transports[0]).toBeInstanceOf(WsTransport);
    } finally {
      await kernel.close();
    }
  });
});

describe('WsTransport.connect', () => {
  const transport = new WsTransport();

  it('reaches a daemon from a machine config (addr + token, or addr + token_file)', async () => {
    for (const config of [
      { name: 'gpu1', transport: 'ws', addr: daemon.url, token },
      { name: 'gpu1', transport: 'ws', addr: daemon.url.replace('ws://', ''), token_file: daemon.tokenFile },
    ]) {
      const machine = new RemoteMachine({ name: config.name, connect: (signal) => transport.connect(config, signal) });
      try {
        expect((await machine.health()).ok).toBe(true);
      } finally {
        await machine.close();
      }
    }
  });

  it('says what is missing or wrong', async () => {
    expect(await failure(transport.connect({ name: 'x', transport: 'ws', token }))).toMatch(/^INVALID_ARGUMENT: machine x has no addr/);
    expect(await failure(transport.connect({ name: 'x', transport: 'ws', addr: daemon.url }))).toMatch(/^UNAUTHORIZED: unauthorized: machine x has no token/);
    expect(await failure(transport.connect({ name: 'x', transport: 'ws', addr: daemon.url, token: 'a-wrong-token-of-some-length' }))).toMatch(
      /^UNAUTHORIZED: unauthorized: /,
    );
  });
});

describe('connectWs', () => {
  it('reports nothing listening as CONNECTION_LOST "connection refused"', async () => {
    const spare = createServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const port = (spare.address() as { port: number }).port;
    await new Promise((resolve) => spare.close(resolve));
    expect(await failure(connectWs(`ws://127.0.0.1:${port}`, { token }))).toMatch(/^CONNECTION_LOST: connection refused: nothing is listening at ws:\/\/127\.0\.0\.1:/);
    expect(await failure(connectWs('/nonexistent/tether.sock', { token }))).toMatch(/^CONNECTION_LOST: connection refused/);
  });

  it('can be aborted', async () => {
    const controller = new AbortController();
    const pending = connectWs(daemon.url, { token, signal: controller.signal });
    controller.abort();
    expect(await failure(pending)).toMatch(/^ABORTED/);
  });

  it('gives up on a server that never answers the upgrade', async () => {
    const silent = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      expect(await failure(connectWs(`ws://127.0.0.1:${port}`, { token, handshakeTimeoutMs: 200 }))).toMatch(/^CONNECTION_LOST/);
    } finally {
      silent.close();
    }
  });
});
