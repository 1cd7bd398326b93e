// A reply lost on the way back: the proxy swallows everything the daemon sends after it saw the
// request go up, lets the daemon act on it, then cuts the connection.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isTetherError, type RemoteMachine } from '@tether/core';
import { processesOf } from '@tether/core/testing';
import { readToken, remoteMachine, startDaemon, type Daemon } from './index.js';
import { backends, ClientFrameReader, CuttableProxy, eventually, removeTempDirs, tempDir } from '../test/support.js';

let dir: string;
let daemon: Daemon;
let proxy: CuttableProxy;
let machine: RemoteMachine;

beforeAll(async () => {
  dir = await tempDir();
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(dir, 'daemon'), plugins: backends(dir) });
  proxy = await CuttableProxy.start({ host: '127.0.0.1', port: (daemon.address as { port: number }).port });
  watchRequests();
  machine = remoteMachine(`ws://127.0.0.1:${proxy.port}`, { token: await readToken(daemon.tokenFile!), name: 'lossy', reconnect: { initialDelayMs: 5, maxDelayMs: 50 } });
  await machine.health();
});
afterAll(async () => {
  await machine?.close();
  await proxy?.close();
  await daemon?.close();
  await removeTempDirs();
});

/** When set, the daemon's replies vanish on a connection from the first request with this method on. */
let loseRepliesAfter: string | undefined;
let lossStarted = false;

/** Reads every connection's requests from its first byte, so it can tell when `loseRepliesAfter` goes up. */
function watchRequests(): void {
  proxy.onData = (direction, chunk, connection) => {
    const state = connection.state as { reader?: ClientFrameReader; lost?: boolean };
    if (direction === 'up') {
      state.reader ??= new ClientFrameReader();
      const texts = state.reader.feed(chunk);
      if (loseRepliesAfter !== undefined && texts.some((text) => text.includes(`"method":"${loseRepliesAfter}"`))) {
        state.lost = true;
        lossStarted = true;
      }
      return;
    }
    if (state.lost) return 'drop';
  };
}

/** Stops losing replies and cuts every connection (the one whose reply was lost with them). */
function cutAndHeal(): void {
  loseRepliesAfter = undefined;
  proxy.cutAll();
}

it('exec/start whose reply is lost is retried with the same id: exactly one process', async () => {
  const marker = join(dir, 'marker');
  loseRepliesAfter = 'exec/start';
  lossStarted = false;
  const label = { test: 'idempotent-start' };
  const starting = machine.exec.start({ command: `echo ran >> ${marker}`, labels: label });
  // The daemon ran it (the marker has its line) but the client has no reply: cut now.
  await eventually(async () => (await readFile(marker, 'utf8').catch(() => '')).length > 0, 10_000, 'the process ran');
  expect(lossStarted).toBe(true);
  cutAndHeal();

  const state = await starting;
  await machine.exec.wait(state.id);
  expect(await readFile(marker, 'utf8')).toBe('ran\n');
  const all = await machine.exec.list({ limit: 1000 });
  expect(all.items.filter((item) => item.spec?.labels?.['test'] === 'idempotent-start').map((item) => item.id)).toEqual([state.id]);
});

it('exec/signal whose reply is lost fails with OUTCOME_UNKNOWN', async () => {
  const run = await machine.exec.start({ argv: ['sleep', '30'] });
  await eventually(() => processesOf(run.id).length > 0);
  loseRepliesAfter = 'exec/signal';
  lossStarted = false;
  const signalling = machine.exec.signal(run.id, 'KILL').then(
    () => 'resolved',
    (error: unknown) => (isTetherError(error) ? error.code : String(error)),
  );
  // It took effect on the daemon; only the reply is missing.
  await eventually(() => processesOf(run.id).length === 0, 10_000, 'the signal delivered');
  expect(lossStarted).toBe(true);
  cutAndHeal();
  expect(await signalling).toBe('OUTCOME_UNKNOWN');
  expect(await machine.exec.wait(run.id)).toMatchObject({ status: 'finished', endReason: 'signaled' });
});

it('exec/write whose reply is lost is retried with the same writeId: the bytes arrive once', async () => {
  const run = await machine.exec.start({ argv: ['cat'], stdin: true });
  loseRepliesAfter = 'exec/write';
  lossStarted = false;
  const writing = machine.exec.write(run.id, 'hello\n');
  const onDaemon = daemon.kernel.machine('local').exec;
  await eventually(async () => (await onDaemon.logs(run.id)).lines.length > 0, 10_000, 'the write reached the process');
  expect(lossStarted).toBe(true);
  cutAndHeal();
  expect(await writing).toEqual({ bytes: 6 });
  await machine.exec.closeStdin(run.id);
  await machine.exec.wait(run.id);
  expect((await machine.exec.logs(run.id)).lines.map((l) => l.line)).toEqual(['hello']);
});
