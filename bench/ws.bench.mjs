// The daemon over WebSocket (a real daemonMain child on loopback), each beside a floor measured
// in the same run:
//  1. `exec true` round trip (exec.start + exec.wait through a RemoteMachine) vs a raw ws echo
//     round trip (to a child echo server) and a raw spawn('true') here;
//  2. 1 GiB of output streamed daemon → client through exec.follow (persisted on the daemon)
//     vs a raw ws stream of the same bytes from a child;
//  3. catch-up replay: follow from seq 0 of a finished execution with 200k small events;
//  4. daemon RSS idle, and with 200 running `sleep`s followed by 10 clients (measured first).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LevelEventStore } from '@tether/store-level';
import { readToken, remoteMachine } from '@tether/transport-ws';
import { ms, timeMany } from './timing.mjs';

const require = createRequire(fileURLToPath(new URL('../packages/transport-ws/package.json', import.meta.url)));
const { WebSocket, WebSocketServer } = require('ws');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const STREAM_BYTES = Number(process.env.BENCH_STREAM_BYTES ?? 1024 ** 3);
const REPLAY_EVENTS = Number(process.env.BENCH_REPLAY_EVENTS ?? 200_000);
const MiB = 1024 ** 2;

// --- child roles: a raw ws echo server and a raw ws stream server (the floors) -------------------
if (process.argv[2] === '--floor-server') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16 * MiB });
  wss.on('listening', () => process.stdout.write(`${wss.address().port}\n`));
  wss.on('connection', (ws, req) => {
    if (req.url === '/echo') return ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    // /stream/N: N bytes in 64 KiB binary frames, pausing while more than 8 MiB is queued.
    let left = Number(req.url.split('/')[2]);
    const chunk = Buffer.alloc(64 * 1024);
    const pump = () => {
      while (left > 0 && ws.bufferedAmount < 8 * MiB) {
        const n = Math.min(left, chunk.length);
        ws.send(n === chunk.length ? chunk : chunk.subarray(0, n));
        left -= n;
      }
      if (left > 0) setImmediate(pump);
    };
    pump();
  });
  await new Promise(() => undefined);
}


/** Starts a child and resolves with its first stdout line. */
function startChild(args) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ child, line: out.split('\n')[0] });
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

function rssMiB(pid) {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return +(kb / 1024).toFixed(1);
}

function rawSpawnTrue() {
  return new Promise((resolve, reject) => {
    const child = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.on('error', reject);
    child.on('close', resolve);
  });
}

function openWs(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * MiB });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Follows an execution from seq 0 to its end; resolves with event and byte counts. */
function followAll(machine, id) {
  let events = 0;
  let bytes = 0;
  return new Promise((resolve, reject) =>
    machine.exec.follow(id, 0).subscribe({
      next: (event) => {
        events++;
        if (event.type === 'OutputProduced') bytes += event.data.data.byteLength;
      },
      error: reject,
      complete: () => resolve({ events, bytes }),
    }),
  );
}

/** A finished execution with `count` small output events, written straight into a store. */
async function seedReplayExecution(eventsDir, count) {
  const store = await LevelEventStore.open(eventsDir);
  const id = 'bench-replay-0001';
  await store.append(id, [
    { type: 'ExecutionRequested', data: { spec: { argv: ['synthetic'], envMode: 'merge', stdin: false, killGraceMs: 3000 } } },
    { type: 'ExecutionStarted', data: { pid: 1, pgid: 1, tty: false } },
  ]);
  const line = new TextEncoder().encode('a short line of output\n');
  for (let done = 0; done < count; done += 5000) {
    const batch = Array.from({ length: Math.min(5000, count - done) }, () => ({ type: 'OutputProduced', data: { stream: 'stdout', data: line } }));
    await store.append(id, batch);
  }
  await store.append(id, [{ type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } }]);
  await store.close();
  return id;
}

const dir = mkdtempSync(join(tmpdir(), 'tether-bench-ws-'));
const dataDir = join(dir, 'daemon');
const children = [];
const machines = [];
try {
  const replayId = await seedReplayExecution(join(dataDir, 'events'), REPLAY_EVENTS);
  const daemonMain = fileURLToPath(new URL('../packages/transport-ws/dist/daemonMain.js', import.meta.url));
  const startDaemon = async (dir) => {
    const daemon = await startChild([daemonMain, '--listen', '127.0.0.1:0', '--data-dir', dir, '--plugin', '@tether/plugin-process']);
    children.push(daemon.child);
    const { url, tokenFile } = JSON.parse(daemon.line);
    const token = await readToken(tokenFile);
    const machine = remoteMachine(url, { token, name: 'bench' });
    machines.push(machine);
    await machine.health();
    return { child: daemon.child, url, token, machine };
  };

  // 1. RSS of a fresh daemon: idle, then with 200 sleeps followed by 10 clients
  const fresh = await startDaemon(join(dir, 'fresh'));
  const idleRss = rssMiB(fresh.child.pid);
  const sleeps = [];
  const { url, token, machine } = fresh;
  for (let i = 0; i < 200; i++) sleeps.push((await machine.exec.start({ argv: ['sleep', '120'] })).id);
  const clients = Array.from({ length: 10 }, (_, i) => remoteMachine(url, { token, name: `client${i}` }));
  machines.push(...clients);
  // The server runs at most 64 requests of one connection at once (and refuses more), so each
  // client attaches its 200 follows in batches.
  const subscriptions = [];
  let attached = 0;
  await Promise.all(
    clients.map(async (client) => {
      for (let i = 0; i < sleeps.length; i += 50) {
        const batch = sleeps.slice(i, i + 50);
        await Promise.all(
          batch.map(
            (id) =>
              new Promise((resolve, reject) => {
                subscriptions.push(
                  client.exec.follow(id, 0).subscribe({
                    next: (e) => e.type === 'ExecutionStarted' && (attached++, resolve()),
                    error: reject,
                  }),
                );
              }),
          ),
        );
      }
    }),
  );
  const busyRss = rssMiB(fresh.child.pid);
  console.log(`daemon RSS: idle ${idleRss} MiB (target ≤ 80) | 200 sleeps × 10 following clients ${busyRss} MiB (target ≤ 256)`);
  for (const s of subscriptions) s.unsubscribe();
  for (let i = 0; i < sleeps.length; i += 50) await Promise.all(sleeps.slice(i, i + 50).map((id) => machine.exec.cancel(id, { graceMs: 1000 })));
  await Promise.all(clients.map((client) => client.close()));
  await machine.close();
  fresh.child.kill('SIGTERM');

  // 2-4 on a daemon whose store holds the replay execution
  const { child: daemonChild, machine: main } = await startDaemon(dataDir);
  const floor = await startChild([fileURLToPath(import.meta.url), '--floor-server']);
  children.push(floor.child);
  const floorUrl = `ws://127.0.0.1:${floor.line}`;

  // 2. round trips
  const run = async (spec) => main.exec.wait((await main.exec.start(spec)).id);
  const tether = await timeMany(() => run({ argv: ['true'] }), ROUNDS);
  const echoWs = await openWs(`${floorUrl}/echo`);
  const echo = await timeMany(
    () =>
      new Promise((resolve) => {
        echoWs.once('message', resolve);
        echoWs.send('{"jsonrpc":"2.0","id":1,"method":"daemon/health","params":{}}');
      }),
    ROUNDS,
  );
  echoWs.close();
  const raw = await timeMany(rawSpawnTrue, ROUNDS);
  console.log(
    `exec true over ws: p50 ${tether.p50} ms p99 ${tether.p99} ms (targets ≤ 10 / ≤ 30) | raw ws echo p50 ${echo.p50} ms | raw spawn p50 ${raw.p50} ms`,
  );

  // 3. catch-up replay (before the bulk stream, whose LevelDB compaction would compete for the CPU)
  let t0 = process.hrtime.bigint();
  const replay = await followAll(main, replayId);
  const replaySeconds = ms(t0) / 1000;
  const replayRate = replay.events / replaySeconds;
  console.log(`catch-up replay of ${replay.events} events: ${(replayRate / 1000).toFixed(0)}k events/s (target ≥ 100k/s)`);

  // 4. 1 GiB through exec.follow, live, vs a raw ws stream
  t0 = process.hrtime.bigint();
  const flood = await main.exec.start({ argv: ['head', '-c', String(STREAM_BYTES), '/dev/zero'] });
  const streamed = await followAll(main, flood.id);
  const streamSeconds = ms(t0) / 1000;
  if (streamed.bytes !== STREAM_BYTES) throw new Error(`followed ${streamed.bytes} bytes, expected ${STREAM_BYTES}`);
  t0 = process.hrtime.bigint();
  const rawBytes = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${floorUrl}/stream/${STREAM_BYTES}`, { perMessageDeflate: false });
    let n = 0;
    ws.on('message', (data) => {
      n += data.length;
      if (n >= STREAM_BYTES) {
        ws.close();
        resolve(n);
      }
    });
    ws.once('error', reject);
  });
  const rawStreamSeconds = ms(t0) / 1000;
  const followMiBs = STREAM_BYTES / MiB / streamSeconds;
  const rawMiBs = rawBytes / MiB / rawStreamSeconds;
  console.log(
    `stream ${STREAM_BYTES / MiB} MiB via exec.follow (live, persisted): ${followMiBs.toFixed(0)} MiB/s (target ≥ 100) | raw ws stream ${rawMiBs.toFixed(0)} MiB/s`,
  );

  const afterRss = rssMiB(daemonChild.pid);
  console.log(
    JSON.stringify({
      bench: 'ws',
      results: {
        exec_true_ms: tether,
        raw_ws_echo_ms: echo,
        raw_spawn_ms: raw,
        exec_true_p50_vs_echo_plus_spawn: +(tether.p50 / (echo.p50 + raw.p50)).toFixed(2),
        follow_mib_s: +followMiBs.toFixed(1),
        raw_ws_stream_mib_s: +rawMiBs.toFixed(1),
        follow_ratio: +(followMiBs / rawMiBs).toFixed(2),
        replay_events_s: Math.round(replayRate),
        replay_events: replay.events,
        daemon_rss_idle_mib: idleRss,
        daemon_rss_busy_mib: busyRss,
        daemon_rss_after_bulk_mib: afterRss,
      },
    }),
  );
} finally {
  await Promise.all(machines.map((m) => m.close()));
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', resolve);
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
