// Completion notifications from the machine that runs the execution: a command run once per
// ended execution with the summary on stdin, a URL POSTed to (a real local HTTP listener) and
// retried after a 500, a notification that keeps failing recorded as failed with the execution
// unaffected, and one owed by a process that stopped delivered by the next one on the same store.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type ExecutionState, type Kernel } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import { eventually, withTempDir } from './support.js';

interface Received {
  readonly body: Record<string, unknown>;
  readonly contentType: string | undefined;
}

/** A loopback HTTP listener answering each POST with the next status of `statuses` (the last one repeats). */
async function listener(statuses: number[]): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ body: JSON.parse(body) as Record<string, unknown>, contentType: request.headers['content-type'] });
      response.statusCode = statuses[Math.min(received.length - 1, statuses.length - 1)]!;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, received, server };
}

const notified = (kernel: Kernel, id: string, count = 1) =>
  eventually(async () => ((await kernel.machine().exec.get(id)).notifications?.length ?? 0) >= count, 20_000, `${count} notification(s) of ${id}`);

describe('completion notifications', () => {
  let dir: string;
  let store: LevelEventStore;
  let kernel: Kernel;
  const servers: Server[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tether-notify-'));
    store = await LevelEventStore.open(join(dir, 'events'));
    kernel = await createKernel({ plugins: [processPlugin], store, local: { notifications: { retryBaseMs: 20, urlAttempts: 3 } } });
  });
  afterAll(async () => {
    await kernel?.close();
    await store?.close();
    for (const server of servers) server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the command once per ended execution, with the summary on stdin, for every kind of end', async () => {
    const exec = kernel.machine().exec;
    const log = join(dir, 'ended.jsonl');
    const notify = { command: `cat >> '${log}'; echo >> '${log}'` };
    const exited = await exec.start({ command: 'echo hi; exit 3', notify });
    const failed = await exec.start({ argv: ['/no/such/program'], notify });
    const cancelled = await exec.start({ command: 'sleep 30', notify });
    await exec.cancel(cancelled.id, { graceMs: 500 });
    for (const id of [exited.id, failed.id, cancelled.id]) await notified(kernel, id);
    const lines = (await readFile(log, 'utf8'))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    const byId = new Map(lines.map((l) => [l['exec_id'], l]));
    expect(byId.get(exited.id)).toMatchObject({ status: 'finished', end_reason: 'exited', exit_code: 3, stdout_bytes: 3, cmd: 'echo hi; exit 3', machine: 'local' });
    expect(byId.get(failed.id)).toMatchObject({ end_reason: 'failed_to_start', error: expect.any(String) });
    expect(byId.get(cancelled.id)).toMatchObject({ end_reason: 'cancelled' });
    const state = await exec.get(exited.id);
    expect(state.notifications).toEqual([{ channel: 'command', delivered: true, attempts: 1, detail: 'exit 0', at: expect.any(Number) }]);
    expect(state.notifications[0]!.at).toBeGreaterThanOrEqual(state.finishedAt!);
  });

  it('POSTs the summary to the URL, retrying after a first 500', async () => {
    const hook = await listener([500, 204]);
    servers.push(hook.server);
    const exec = kernel.machine().exec;
    const run = await exec.start({ command: 'echo done', notify: { url: hook.url } });
    await notified(kernel, run.id);
    expect(hook.received).toHaveLength(2);
    expect(hook.received[1]).toEqual({ contentType: 'application/json', body: expect.objectContaining({ exec_id: run.id, end_reason: 'exited', exit_code: 0 }) });
    expect((await exec.get(run.id)).notifications).toEqual([{ channel: 'url', delivered: true, attempts: 2, detail: 'HTTP 204', at: expect.any(Number) }]);
  });

  it('a notification that keeps failing is recorded as failed after its bounded tries; the execution is unaffected', async () => {
    const hook = await listener([500]);
    servers.push(hook.server);
    const exec = kernel.machine().exec;
    const run = await exec.start({ command: 'exit 0', notify: { url: hook.url, command: 'echo nope >&2; exit 7' } });
    await notified(kernel, run.id, 2);
    const state: ExecutionState = await exec.get(run.id);
    expect(state).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0 });
    expect(hook.received).toHaveLength(3);
    const byChannel = new Map(state.notifications.map((n) => [n.channel, n]));
    expect(byChannel.get('url')).toMatchObject({ delivered: false, attempts: 3, detail: 'HTTP 500' });
    expect(byChannel.get('command')).toMatchObject({ delivered: false, attempts: 1, detail: 'exit 7: nope' });
    const bad = await exec.start({ command: 'true', notify: { url: 'ftp://example.com/x' } }).catch((error: unknown) => error);
    expect(bad).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

it('a notification owed when the owning process stopped is delivered by the next one on the same store', async () => {
  await withTempDir(async (dir) => {
    const hook = await listener([204]);
    try {
      // The first process records an ended execution whose notification never went out.
      const first = await LevelEventStore.open(join(dir, 'events'));
      await first.append('owed-1', [{ type: 'ExecutionRequested', data: { spec: { command: 'true', envMode: 'merge', stdin: false, killGraceMs: 3000, notify: { url: hook.url } } } }]);
      await first.append('owed-1', [{ type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } }]);
      await first.close();
      const second = await LevelEventStore.open(join(dir, 'events'));
      const kernel = await createKernel({ plugins: [processPlugin], store: second });
      try {
        await notified(kernel, 'owed-1');
        expect(hook.received.map((r) => r.body['exec_id'])).toEqual(['owed-1']);
      } finally {
        await kernel.close();
        await second.close();
      }
    } finally {
      hook.server.close();
    }
  });
});
