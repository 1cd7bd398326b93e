// LevelEventStore, each number beside a floor measured in the same run:
//  1. ingest of 64 KiB output chunks through `append` (group commit, several appends in flight,
//     as a producer keeps them) vs raw classic-level batch writes of the same bytes;
//  2. tail: the last 2000 lines of a 1 GiB execution vs of a 1 MiB one (~100-byte lines in
//     64 KiB chunks), through core's `readOutputTail` (reverse pages that grow);
//  3. replay of a ~200k-event stream through `follow` from seq 1 vs a raw LevelDB iteration.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readOutputTail, toLines } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import { ClassicLevel } from 'classic-level';

const MiB = 1024 ** 2;
const CHUNK = 64 * 1024;
const INGEST_BYTES = Number(process.env.BENCH_INGEST_MIB ?? 512) * MiB;
const TAIL_LARGE_BYTES = Number(process.env.BENCH_TAIL_MIB ?? 1024) * MiB;
const REPLAY_EVENTS = Number(process.env.BENCH_REPLAY_EVENTS ?? 200_000);
const IN_FLIGHT = 8;
const TAIL_LINES = 2000;

const root = mkdtempSync(join(tmpdir(), 'tether-bench-store-'));
const now = () => performance.now();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// Output as a process would print it: 100-byte lines, varied enough that compression is honest.
const chunks = Array.from({ length: 64 }, (_, c) => {
  const chunk = Buffer.alloc(CHUNK);
  let seed = c + 1;
  for (let at = 0, n = 0; at < CHUNK; n++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const line = `${String(c * 1000 + n).padStart(7, '0')} step=${seed % 100000} loss=${(seed % 9973) / 9973} ${seed.toString(36).repeat(8)}`.slice(0, 99) + '\n';
    at += chunk.write(line, at);
  }
  return new Uint8Array(chunk);
});
const spec = { command: 'bench', envMode: 'merge', stdin: false, killGraceMs: 3000 };
const requested = { type: 'ExecutionRequested', data: { spec } };
const started = { type: 'ExecutionStarted', data: { pid: 1, pgid: 1, tty: false } };
const exited = { type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } };
const output = (data) => ({ type: 'OutputProduced', data: { stream: 'stdout', data } });

/** Appends `bytes` of 64 KiB chunks to `id`, keeping IN_FLIGHT appends pipelined. */
async function produce(store, id, bytes) {
  await store.append(id, [requested, started]);
  const inflight = new Set();
  for (let i = 0; i * CHUNK < bytes; i++) {
    if (inflight.size >= IN_FLIGHT) await Promise.race(inflight);
    const p = store.append(id, [output(chunks[i % chunks.length])]);
    inflight.add(p);
    p.then(() => inflight.delete(p));
  }
  await Promise.all(inflight);
  await store.append(id, [exited]);
}

async function ingestStore(dir) {
  const store = await LevelEventStore.open(dir, { maxOutputBytesPerExecution: 4 * INGEST_BYTES });
  const t0 = now();
  await produce(store, 'ingest', INGEST_BYTES);
  const seconds = (now() - t0) / 1000;
  const { writes, syncWrites } = store.stats;
  await store.close();
  return { mibps: INGEST_BYTES / MiB / seconds, writes, syncWrites };
}

// The store opens LevelDB with a 32 MiB write buffer; the floor gets the same, and the default
// (4 MiB) is measured too for reference.
const STORE_LEVEL_OPTIONS = { writeBufferSize: 32 * MiB };

async function ingestRaw(dir, options = STORE_LEVEL_OPTIONS) {
  const db = new ClassicLevel(dir, { ...options, keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const t0 = now();
  const perBatch = MiB / CHUNK;
  let seq = 0;
  for (let written = 0; written < INGEST_BYTES; ) {
    const ops = [];
    for (let i = 0; i < perBatch && written < INGEST_BYTES; i++, written += CHUNK) {
      const key = Buffer.alloc(17);
      key.write('Eingest', 0);
      key.writeUInt32BE(++seq, 13);
      ops.push({ type: 'put', key, value: chunks[seq % chunks.length] });
    }
    await db.batch(ops);
  }
  const seconds = (now() - t0) / 1000;
  await db.close();
  return { mibps: INGEST_BYTES / MiB / seconds };
}

async function timeTail(fn, store, id) {
  const samples = [];
  let got = 0;
  for (let i = 0; i < 15; i++) {
    const t0 = now();
    const lines = toLines(await fn(store, id)).slice(-TAIL_LINES);
    samples.push(now() - t0);
    got = lines.length;
  }
  if (got !== TAIL_LINES) throw new Error(`tail of ${id} returned ${got} lines: ${JSON.stringify((await store.read(id, { reverse: true, limit: 3 })).map((e) => [e.seq, e.type, e.data.data?.byteLength]))}`);
  return median(samples.slice(2)); // the first runs warm the caches
}

async function replay(dir) {
  const store = await LevelEventStore.open(dir);
  const id = 'replay';
  await store.append(id, [requested, started]);
  const encoder = new TextEncoder();
  for (let i = 0; i < REPLAY_EVENTS; i += 1000) {
    await store.append(id, Array.from({ length: 1000 }, (_, j) => output(encoder.encode(`line ${i + j}\n`))));
  }
  await store.append(id, [exited]);
  const total = (await store.state(id)).lastSeq;

  const t0 = now();
  const count = await new Promise((resolve, reject) => {
    let n = 0;
    store.follow(id, 0).subscribe({ next: () => n++, error: reject, complete: () => resolve(n) });
  });
  const seconds = (now() - t0) / 1000;
  if (count !== total) throw new Error(`follow replayed ${count} of ${total} events`);
  await store.close();

  // Floor: the same key range iterated raw, no decoding.
  const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const prefix = Buffer.concat([Buffer.from('E'), Buffer.from([0, id.length]), Buffer.from(id)]);
  const r0 = now();
  let rawCount = 0;
  const it = db.iterator({ gt: prefix, lt: Buffer.concat([prefix, Buffer.alloc(8, 0xff)]), highWaterMarkBytes: 4 * MiB });
  for (let entries = await it.nextv(2048); entries.length > 0; entries = await it.nextv(2048)) rawCount += entries.length;
  await it.close();
  const rawSeconds = (now() - r0) / 1000;
  await db.close();
  if (rawCount !== total) throw new Error(`raw iteration saw ${rawCount} of ${total} events`);
  return { eventsPerSec: total / seconds, rawEventsPerSec: total / rawSeconds, events: total };
}

try {
  // 1. ingest, alternating store and raw twice; the better run of each counts.
  const runs = { store: [], raw: [], rawDefault: [] };
  for (let i = 0; i < 2; i++) {
    runs.raw.push(await ingestRaw(join(root, `raw${i}`)));
    rmSync(join(root, `raw${i}`), { recursive: true, force: true });
    runs.rawDefault.push(await ingestRaw(join(root, `rawd${i}`), {}));
    rmSync(join(root, `rawd${i}`), { recursive: true, force: true });
    runs.store.push(await ingestStore(join(root, `store${i}`)));
    rmSync(join(root, `store${i}`), { recursive: true, force: true });
  }
  const best = (xs) => xs.reduce((a, b) => (b.mibps > a.mibps ? b : a));
  const ingestS = best(runs.store);
  const ingestR = best(runs.raw);
  const ingest = {
    mib: INGEST_BYTES / MiB,
    storeMiBps: round(ingestS.mibps),
    rawMiBps: round(ingestR.mibps),
    rawDefaultOptionsMiBps: round(best(runs.rawDefault).mibps),
    ratio: round(ingestS.mibps / ingestR.mibps, 2),
    batches: ingestS.writes,
    syncBatches: ingestS.syncWrites,
  };
  console.log(
    `ingest ${ingest.mib} MiB in 64 KiB appends (${IN_FLIGHT} in flight): store ${ingest.storeMiBps} MiB/s, raw classic-level batches ${ingest.rawMiBps} MiB/s (${ingest.rawDefaultOptionsMiBps} with default options), ratio ${ingest.ratio} (${ingest.batches} batches, ${ingest.syncBatches} synced)`,
  );

  // 2. tail
  let tailStore = await LevelEventStore.open(join(root, 'tail'), { maxOutputBytesPerExecution: 2 * TAIL_LARGE_BYTES });
  const b0 = now();
  await produce(tailStore, 'large', TAIL_LARGE_BYTES);
  const buildSeconds = (now() - b0) / 1000;
  await produce(tailStore, 'small', MiB);
  // Reopen so both tails are read from LevelDB's tables (the small one would otherwise still sit
  // in the memtable, which is not the case being compared).
  await tailStore.close();
  tailStore = await LevelEventStore.open(join(root, 'tail'), { maxOutputBytesPerExecution: 2 * TAIL_LARGE_BYTES });
  const coreTail = (store, id) => readOutputTail(store, id, { lines: TAIL_LINES });
  const tail = {
    largeMiB: TAIL_LARGE_BYTES / MiB,
    largeMs: round(await timeTail(coreTail, tailStore, 'large'), 2),
    smallMs: round(await timeTail(coreTail, tailStore, 'small'), 2),
  };
  tail.ratio = round(tail.largeMs / tail.smallMs, 2);
  await tailStore.close();
  rmSync(join(root, 'tail'), { recursive: true, force: true });
  console.log(`tail setup: wrote ${tail.largeMiB} MiB in ${round(buildSeconds)} s`);
  console.log(
    `tail ${TAIL_LINES} lines, core readOutputTail: ${tail.largeMiB} MiB execution ${tail.largeMs} ms, 1 MiB execution ${tail.smallMs} ms, ratio ${tail.ratio}`,
  );

  // 3. replay
  const r = await replay(join(root, 'replay'));
  const replayResult = {
    events: r.events,
    eventsPerSec: Math.round(r.eventsPerSec),
    rawEventsPerSec: Math.round(r.rawEventsPerSec),
    ratio: round(r.eventsPerSec / r.rawEventsPerSec, 2),
  };
  console.log(
    `replay ${r.events} events via follow: ${replayResult.eventsPerSec} events/s, raw LevelDB iteration ${replayResult.rawEventsPerSec} events/s, ratio ${replayResult.ratio}`,
  );

  console.log(JSON.stringify({ bench: 'store', results: { ingest, tail, replay: replayResult } }));
} finally {
  rmSync(root, { recursive: true, force: true });
}
