// Clients that ask and never read: the daemon (a real process, dist/daemonMain.js) must keep its
// memory bounded per connection. Its RSS is read from /proc/<pid>/status throughout each attack;
// an attack ends when the daemon logs that the connection backed up (it stopped reading that
// client's requests) or when its RSS passes the bound, whichever comes first.
// Run `npx tsc -b packages/transport-ws` first.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RemoteMachine } from '@tether/core';
import { rejection } from '@tether/core/testing';
import { readToken, remoteMachine } from './index.js';
import { eventually, removeTempDirs, startDaemonChild, tempDir, type DaemonChild } from '../test/support.js';

const MiB = 1024 * 1024;
/** The goal: the daemon stays under this with one misbehaving client. */
const ONE_CLIENT_BOUND = 256 * MiB;
/** What each further misbehaving connection may add. */
const PER_CONNECTION_BOUND = 32 * MiB;
const BACKED_UP = 'client backed up';
const OUTPUT_BYTES = 32 * MiB;

let daemon: DaemonChild;
let token: string;
let machine: RemoteMachine;
let bigId: string;

/** Each attack gets a daemon of its own, with one finished execution of `OUTPUT_BYTES` of output. */
async function freshDaemon(): Promise<void> {
  await stopDaemon();
  const dir = await tempDir('tether-bp-');
  daemon = await startDaemonChild(['--listen', '127.0.0.1:0', '--data-dir', dir, '--plugin', '@tether/plugin-process']);
  token = await readToken(daemon.tokenFile);
  machine = remoteMachine(daemon.url, { token, name: 'bp' });
  const big = await machine.exec.start({ command: `head -c ${OUTPUT_BYTES} /dev/urandom` });
  expect(await machine.exec.wait(big.id)).toMatchObject({ endReason: 'exited', exitCode: 0, bytes: { stdout: OUTPUT_BYTES } });
  bigId = big.id;
  console.log(`[figures] daemon RSS after recording ${mib(OUTPUT_BYTES)} of output ${mib(rssOf(daemon.child.pid!))}`);
}

async function stopDaemon(): Promise<void> {
  if (!daemon) return;
  await machine.close();
  daemon.child.kill('SIGKILL');
  await daemon.exited;
}

afterAll(async () => {
  await stopDaemon();
  await removeTempDirs();
});

function rssOf(pid: number): number {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0; // the daemon has exited
  }
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return Number(match?.[1] ?? 0) * 1024;
}

/** Samples a process's RSS every few ms; `over(bound)` resolves once a sample passes it. */
class RssSampler {
  peak = 0;
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  #watchers: Array<{ bound: number; resolve: () => void }> = [];
  constructor(pid: number) {
    this.#pid = pid;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 5);
  }
  over(bound: number): Promise<void> {
    return new Promise((resolve) => {
      this.#watchers.push({ bound, resolve });
      this.#sample();
    });
  }
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.peak;
  }
  #sample(): void {
    const rss = rssOf(this.#pid);
    this.peak = Math.max(this.peak, rss);
    for (const w of this.#watchers.filter((w) => rss > w.bound)) w.resolve();
    this.#watchers = this.#watchers.filter((w) => rss <= w.bound);
  }
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

function logCount(msg: string): number {
  return daemon
    .stderr()
    .split('\n')
    .filter((line) => line.includes(`"msg":"${msg}`)).length;
}

/** Waits until the daemon has logged `msg` `count` times in all; fails as soon as the RSS passes `bound`. */
async function backedUpOrOver(sampler: RssSampler, count: number, bound: number): Promise<void> {
  let over = false;
  await Promise.race([
    eventually(() => over || logCount(BACKED_UP) >= count, 60_000, 'the daemon backed up the connection'),
    sampler.over(bound).then(() => (over = true)),
  ]);
  if (sampler.peak > bound) sampler.stop();
  console.log(`[figures] backed up at daemon RSS peak ${mib(sampler.peak)}`);
  expect(sampler.peak, `daemon RSS ${mib(sampler.peak)} passed ${mib(bound)}`).toBeLessThanOrEqual(bound);
}

/** A raw client that does not read until told to: replies by id, follow frames counted. */
async function rawClient(): Promise<{ ws: WebSocket; replies: Map<number, { result?: any; error?: any }>; frames: () => number }> {
  const ws = new WebSocket(daemon.url, { headers: { authorization: `Bearer ${token}` }, maxPayload: 1024 * MiB, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const replies = new Map<number, { result?: unknown; error?: unknown }>();
  let frames = 0;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) return void frames++;
    for (const reply of [JSON.parse(data.toString())].flat()) if (typeof reply.id === 'number') replies.set(reply.id, reply);
  });
  return { ws, replies, frames: () => frames };
}

function closed(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.terminate();
  });
}

/**
 * Sends `requests` pipelined calls on a raw connection that reads nothing: the daemon must back
 * up within the one-client bound, keep serving another client, then answer every call once the
 * connection reads again. Returns the RSS figures and the replies.
 */
async function unreadPipeline(request: (id: number) => { method: string; params: unknown }, requests: number) {
  const before = logCount(BACKED_UP);
  const baseline = rssOf(daemon.child.pid!);
  const sampler = new RssSampler(daemon.child.pid!);
  const { ws, replies } = await rawClient();
  ws.pause();
  for (let id = 0; id < requests; id++) ws.send(JSON.stringify({ jsonrpc: '2.0', id, ...request(id) }));
  await backedUpOrOver(sampler, before + 1, ONE_CLIENT_BOUND);
  // Another client is served meanwhile.
  expect(await machine.health()).toMatchObject({ ok: true });
  const attackPeak = sampler.peak;
  expect(attackPeak).toBeLessThanOrEqual(ONE_CLIENT_BOUND);
  // Now it reads: every reply comes. (While it reads as fast as it can, the RSS also holds
  // garbage the collector has not reclaimed yet.)
  ws.resume();
  await eventually(() => replies.size === requests, 60_000, 'every reply read');
  const peak = sampler.stop();
  expect(peak).toBeLessThanOrEqual(ONE_CLIENT_BOUND + 128 * MiB);
  await closed(ws);
  return { baseline, attackPeak, peak, replies };
}

describe('a client that never reads its replies', () => {
  it('(a) pipelined exec/read of 64 MiB pages: pages cut to 4 MiB, requests no longer read once 8 MiB wait', async () => {
    await freshDaemon();
    const requests = 32;
    const { baseline, attackPeak, peak, replies } = await unreadPipeline(
      () => ({ method: 'exec/read', params: { id: bigId, afterSeq: 0, limit: 10_000, maxBytes: 64 * MiB } }),
      requests,
    );
    // Each reply is a page cut at 4 MiB of output: it ends with the event that reaches 4 MiB (as
    // `maxBytes` is documented), and events are at most one supervisor frame (512 KiB).
    for (const reply of replies.values()) {
      const sizes = (reply.result.events as Array<{ type: string; data: { data: string } }>)
        .filter((e) => e.type === 'OutputProduced')
        .map((e) => Buffer.from(e.data.data, 'base64').byteLength);
      const bytes = sizes.reduce((n, size) => n + size, 0);
      expect(bytes).toBeGreaterThan(0);
      expect(bytes - sizes.at(-1)!).toBeLessThan(4 * MiB);
      expect(bytes).toBeLessThanOrEqual(4 * MiB + 512 * 1024);
    }
    console.log(`[figures] (a) ${requests} pipelined exec/read (maxBytes 64 MiB), unread: daemon RSS ${mib(baseline)} -> peak ${mib(attackPeak)}; ${mib(peak)} once read at full speed`);
  }, 120_000);

  it('(b) labels and command lines are bounded at exec/start; exec/list replies are pages of about 4 MiB', async () => {
    await freshDaemon();
    // Over the limits: refused with the limit in the details (the CLI puts it in the hint).
    const labels = await rejection(machine.exec.start({ command: 'true', labels: { note: 'x'.repeat(7.9 * MiB) } }));
    expect(labels).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'labels', limit: 64 * 1024 } });
    const command = await rejection(machine.exec.start({ argv: ['echo', ...Array.from({ length: 5 }, () => 'y'.repeat(500 * 1024))] }));
    expect(command).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'command', limit: 2 * MiB } });

    // 20 executions of 256 KiB of command line and 60 KiB of labels each.
    // (A single argument over 128 KiB cannot be exec'd on Linux: they fail to start, spec recorded.)
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const started = await machine.exec.start({ command: `true ${'z'.repeat(256 * 1024)}`, labels: { note: 'n'.repeat(60 * 1024), i: String(i) } });
      ids.add(started.id);
    }
    const listed = new Set<string>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await machine.exec.list({ limit: 20, ...(cursor ? { cursor } : {}) });
      expect(JSON.stringify(page.items).length).toBeLessThanOrEqual(4 * MiB + 0.4 * MiB);
      for (const item of page.items) listed.add(item.id);
      cursor = page.cursor;
      pages++;
    } while (cursor);
    expect([...ids].every((id) => listed.has(id))).toBe(true);
    expect(pages).toBeGreaterThanOrEqual(2);
    console.log(`[figures] (b) daemon RSS after 20 starts of ~320 KiB specs and the listing ${mib(rssOf(daemon.child.pid!))}`);

    const requests = 32;
    const { baseline, attackPeak, peak, replies } = await unreadPipeline(() => ({ method: 'exec/list', params: { limit: 20 } }), requests);
    for (const reply of replies.values()) expect(reply.result.items.length).toBeGreaterThan(0);
    console.log(`[figures] (b) ${requests} pipelined exec/list over 20 executions of ~320 KiB specs, unread: daemon RSS ${mib(baseline)} -> peak ${mib(attackPeak)}; ${mib(peak)} once read at full speed`);
  }, 120_000);

  it('(d) 50 follows per connection that never read, on 1 and 8 connections: bounded, and released at close', async () => {
    await freshDaemon();
    const follow = async (clients: number) => {
      const before = logCount(BACKED_UP);
      const disconnected = logCount('client disconnected');
      const baseline = rssOf(daemon.child.pid!);
      const bound = ONE_CLIENT_BOUND + (clients - 1) * PER_CONNECTION_BOUND;
      const sampler = new RssSampler(daemon.child.pid!);
      const opened = await Promise.all(Array.from({ length: clients }, () => rawClient()));
      for (const { ws } of opened) {
        ws.pause();
        for (let id = 0; id < 50; id++) ws.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'exec/follow', params: { id: bigId, afterSeq: 0 } }));
      }
      await backedUpOrOver(sampler, before + clients, bound);
      expect(await machine.health()).toMatchObject({ ok: true });
      const peak = sampler.stop();
      await Promise.all(opened.map(({ ws }) => closed(ws)));
      // Every session ends (its follows stopped) and what they held is given back.
      await eventually(() => logCount('client disconnected') >= disconnected + clients, 30_000, 'sessions closed');
      const after = rssOf(daemon.child.pid!);
      console.log(`[figures] (d) ${clients} connection(s) x 50 follows, unread: daemon RSS ${mib(baseline)} -> peak ${mib(peak)}, ${mib(after)} after close`);
      expect(peak).toBeLessThanOrEqual(bound);
      expect(after).toBeLessThanOrEqual(bound);
    };
    await follow(1);
    await follow(8);
    // What the closed connections held is free again: the same attack once more stays within the same bound.
    await follow(8);
  }, 120_000);
});
