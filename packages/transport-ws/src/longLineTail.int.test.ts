// A tail of one 200 MiB line must neither take long nor stall other clients: the daemon reads
// O(tail) and answers a second client's daemon/health throughout (the daemon as a process).
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RemoteMachine } from '@tether/core';
import { readToken, remoteMachine } from './index.js';
import { removeTempDirs, startDaemonChild, tempDir, type DaemonChild } from '../test/support.js';

let daemon: DaemonChild;
let client: RemoteMachine;
let watcher: RemoteMachine;

beforeAll(async () => {
  const root = await tempDir();
  daemon = await startDaemonChild(['--listen', '127.0.0.1:0', '--data-dir', join(root, 'daemon'), '--plugin', '@tether/plugin-process']);
  const token = await readToken(daemon.tokenFile);
  client = remoteMachine(daemon.url, { token, name: 'tailer' });
  watcher = remoteMachine(daemon.url, { token, name: 'watcher' });
});
afterAll(async () => {
  await client?.close();
  await watcher?.close();
  daemon?.child.kill('SIGTERM');
  await daemon?.exited;
  await removeTempDirs();
});

it('tails of a 200 MiB line come back cut and bounded while another client is answered throughout', { timeout: 120_000 }, async () => {
  const started = await client.exec.start({ command: "head -c 200M /dev/zero | tr '\\0' a" });
  const state = await client.exec.wait(started.id);
  expect(state).toMatchObject({ endReason: 'exited', exitCode: 0, bytes: { stdout: 200 * 1024 * 1024 } });

  let tailsDone = false;
  let answered = 0;
  const health = (async () => {
    while (!tailsDone) if ((await watcher.health()).ok) answered++;
  })();
  const results = [];
  try {
    for (let i = 0; i < 3; i++) {
      const before = answered;
      results.push(await client.exec.logs(started.id, { tailLines: 2 }));
      results.push(await client.exec.logs(started.id, { afterSeq: 0 }));
      results.push(await client.exec.logs(started.id, {}));
      // The other client was answered while these ran (its loop is never starved).
      expect(answered).toBeGreaterThan(before);
    }
  } finally {
    tailsDone = true;
    await health;
  }
  for (const { lines } of results) {
    expect(lines.length).toBe(1);
    expect(lines[0]!.line.length).toBeLessThanOrEqual(64 * 1024);
    expect(/^a+$/.test(lines[0]!.line)).toBe(true);
  }
  expect(results[0]!.lines[0]).toMatchObject({ cut: true });
  expect(results[0]!.lines[0]!.line.length).toBe(64 * 1024);
  expect(results[2]!.lines[0]!.line.length).toBe(2000); // the default tail: the last 2000 bytes
  console.info(`[figures] 9 logs calls on a 200 MiB line, daemon/health answered ${answered} times meanwhile`);
});
