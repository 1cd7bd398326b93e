// The live log's stream over real HTTP: server-sent events from a durable cursor. The tail and
// the events after its lastSeq meet without a gap or a repeat; a reconnect with Last-Event-ID
// (what a browser's EventSource sends) resumes after the last event it saw; a character split
// across output events arrives whole.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '@tether/core';
import processPlugin from '@tether/plugin-process';
import { startDashboard, type Dashboard } from '../src/index.js';
import { localDirectory } from './localDirectory.js';

let dir: string;
let kernel: Kernel;
let dashboard: Dashboard;
let cookie: string;

interface Sse {
  readonly event: string;
  readonly id?: string;
  readonly data: string;
}

/**
 * Reads a server-sent event stream until `until` says stop (or the stream ends), then closes it.
 * Returns the events read.
 */
async function readEvents(path: string, headers: Record<string, string>, until: (events: readonly Sse[]) => boolean): Promise<Sse[]> {
  const abort = new AbortController();
  const answer = await fetch(`${dashboard.origin}${path}`, { headers: { cookie, ...headers }, signal: abort.signal });
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: Sse[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = answer.body!.getReader();
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string[]>();
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon);
          fields.set(name, [...(fields.get(name) ?? []), line.slice(colon + 1).replace(/^ /, '')]);
        }
        events.push({ event: fields.get('event')?.[0] ?? 'message', id: fields.get('id')?.[0], data: (fields.get('data') ?? []).join('\n') });
      }
    }
  } finally {
    abort.abort();
    await reader.cancel().catch(() => undefined);
  }
  return events;
}

/** The stdout text the output events carry, in order. */
const stdout = (events: readonly Sse[]) =>
  events
    .filter((e) => e.event === 'output')
    .flatMap((e) => JSON.parse(e.data) as Array<{ s: string; t: string }>)
    .filter((p) => p.s === 'stdout')
    .map((p) => p.t)
    .join('');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tether-dash-live-'));
  kernel = await createKernel({ plugins: [processPlugin] });
  dashboard = await startDashboard({ machines: localDirectory({ local: kernel.machine('local') }), port: 0 });
  const login = await fetch(dashboard.loginUrl, { redirect: 'manual' });
  expect(login.status).toBe(303);
  cookie = login.headers.get('set-cookie')!.split(';')[0]!;
});
afterAll(async () => {
  await dashboard?.close();
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the live log', () => {
  it('follows from the tail without a gap or a repeat, and resumes after Last-Event-ID', async () => {
    const go = join(dir, 'go');
    const local = kernel.machine('local');
    // "€" is printed as its three bytes in two writes, so they land in two output events.
    const started = await local.exec.start({
      command: `echo one; echo two; while [ ! -e '${go}' ]; do sleep 0.05; done; echo three; printf '\\342'; sleep 0.2; printf '\\202\\254 four\\n'; while [ ! -e '${go}2' ]; do sleep 0.05; done; echo five`,
    });
    const base = `/api/machines/local/executions/${started.id}`;
    // The tail once "two" is out, then the events after its lastSeq.
    let tail: { lastSeq: number; lines: Array<{ t: string }> };
    for (;;) {
      tail = (await (await fetch(`${dashboard.origin}${base}/tail`, { headers: { cookie } })).json()) as typeof tail;
      if (tail.lines.some((l) => l.t === 'two')) break;
      await local.exec.read(started.id, { afterSeq: tail.lastSeq, waitMs: 1000 });
    }
    expect(tail.lines.map((l) => l.t)).toEqual(['one', 'two']);
    writeFileSync(go, '');
    const first = await readEvents(`${base}/events?after=${tail.lastSeq}`, {}, (events) => stdout(events).includes('four\n'));
    expect(stdout(first)).toBe('three\n€ four\n');
    const lastId = first.filter((e) => e.id !== undefined).at(-1)!.id!;

    // The browser reconnects with the last id it saw (the URL still says the tail's seq).
    writeFileSync(`${go}2`, '');
    await local.exec.wait(started.id);
    const resumed = await readEvents(`${base}/events?after=${tail.lastSeq}`, { 'last-event-id': lastId }, (events) => events.some((e) => e.event === 'end'));
    expect(stdout(resumed)).toBe('five\n');
    expect(resumed.at(-1)!.event).toBe('end');
    expect(resumed.filter((e) => e.event === 'state').at(-1)!.data).toContain('"status":"finished"');

    // A Last-Event-ID before the URL's cursor does not rewind it; a finished execution's stream ends.
    const again = await readEvents(`${base}/events?after=${lastId}`, { 'last-event-id': '1' }, (events) => events.some((e) => e.event === 'end'));
    expect(stdout(again)).toBe('five\n');
  });
});
