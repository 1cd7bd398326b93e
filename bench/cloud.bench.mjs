// The cloud transport: a relay (`tether relay serve`) and a daemon registered with it
// (`tether daemon serve --relay … --environment bench`, also listening on loopback TCP), each a
// child process; every number beside a floor measured in the same run:
//  1. `exec true` round trip through the relay vs direct WS to the same daemon;
//  2. 1 GiB of output followed through the relay vs direct WS (both persisted by the daemon), with
//     the CPU time the daemon process used for each (less sensitive to other load than MiB/s);
//  3. scale: 1000 simulated registrations (WebSockets holding a registration, pinging every
//     second) on the same relay: relay RSS, and the latency of a pairing (connect through the
//     relay, TLS 1.3 with the pinned daemon, WebSocket upgrade inside) while they are held.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readToken, remoteMachine } from '@tether/transport-ws';
import { cloudMachine, connectCloud, RelayAdmin } from '@tether/transport-cloud';
import { ms, summary, timeMany } from './timing.mjs';

const require = createRequire(fileURLToPath(new URL('../packages/transport-cloud/package.json', import.meta.url)));
const { WebSocket } = require('ws');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const STREAM_BYTES = Number(process.env.BENCH_STREAM_BYTES ?? 1024 ** 3);
const REGISTRATIONS = Number(process.env.BENCH_REGISTRATIONS ?? 1000);
const PAIRINGS = Number(process.env.BENCH_PAIRINGS ?? 200);
const MiB = 1024 ** 2;
const BIN = fileURLToPath(new URL('../packages/cli-oclif/bin/run.js', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'tether-bench-cloud-'));
const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state') };

/** Starts `tether <args>` and resolves with its ready line (JSON). */
function serve(args, extraEnv = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.resume();
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ child, ready: JSON.parse(out.split('\n')[0]) });
    });
    child.once('exit', (code) => reject(new Error(`tether ${args.join(' ')} exited with ${code}`)));
  });
}

function rssMiB(pid) {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return +(kb / 1024).toFixed(1);
}

/** CPU seconds (user + system) the process has used so far (/proc/PID/stat, in clock ticks of 1/100 s). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function followBytes(machine, id) {
  let bytes = 0;
  return new Promise((resolve, reject) =>
    machine.exec.follow(id, 0).subscribe({
      next: (event) => event.type === 'OutputProduced' && (bytes += event.data.data.byteLength),
      error: reject,
      complete: () => resolve(bytes),
    }),
  );
}

/** MiB/s of a follow, and the daemon's CPU seconds per GiB followed. */
async function streamMiBs(machine, daemonPid) {
  const cpu0 = cpuSeconds(daemonPid);
  const t0 = process.hrtime.bigint();
  const run = await machine.exec.start({ argv: ['head', '-c', String(STREAM_BYTES), '/dev/zero'] });
  const bytes = await followBytes(machine, run.id);
  if (bytes !== STREAM_BYTES) throw new Error(`followed ${bytes} bytes, expected ${STREAM_BYTES}`);
  return { mibs: STREAM_BYTES / MiB / (ms(t0) / 1000), cpuPerGiB: (cpuSeconds(daemonPid) - cpu0) / (STREAM_BYTES / 1024 ** 3) };
}

const children = [];
const closers = [];
try {
  const relayDir = join(dir, 'relay');
  const relay = await serve(['relay', 'serve', '--listen', '127.0.0.1:0', '--data-dir', relayDir]);
  children.push(relay.child);
  const relayUrl = relay.ready.url;
  const admin = new RelayAdmin({ relay: relayUrl, adminToken: await readToken(relay.ready.admin_token_file) });
  const relayIdleRss = rssMiB(relay.child.pid);

  const { credential } = await admin.enroll('environment', 'bench');
  const daemonDir = join(dir, 'daemon');
  const daemon = await serve(['daemon', 'serve', '--data-dir', daemonDir, '--listen', '127.0.0.1:0', '--relay', relayUrl, '--environment', 'bench'], {
    TETHER_RELAY_CREDENTIAL: credential,
  });
  children.push(daemon.child);
  const token = await readToken(daemon.ready.token_file);
  const fingerprint = daemon.ready.relay.fingerprint;
  const { credential: relayToken } = await admin.enroll('client', 'bench-client');
  const tcpUrl = daemon.ready.urls.find((u) => u.startsWith('ws://'));
  for (let i = 0; i < 100 && !(await admin.status('online')).some((e) => e.name === 'bench'); i++) await new Promise((r) => setTimeout(r, 100));

  const cloudOptions = { relay: relayUrl, environment: 'bench', relayToken, token, fingerprint };
  const viaRelay = cloudMachine({ ...cloudOptions, name: 'via-relay' });
  const direct = remoteMachine(tcpUrl, { token, name: 'direct' });
  closers.push(viaRelay, direct);

  // 1. round trips
  const run = (m) => async () => m.exec.wait((await m.exec.start({ argv: ['true'] })).id);
  const directRtt = await timeMany(run(direct), ROUNDS);
  const relayRtt = await timeMany(run(viaRelay), ROUNDS);
  console.log(`exec true: through the relay p50 ${relayRtt.p50} ms p99 ${relayRtt.p99} ms | direct ws p50 ${directRtt.p50} ms p99 ${directRtt.p99} ms → ${(relayRtt.p50 / directRtt.p50).toFixed(2)}× (goal ≤ 1.3×)`);

  // 2. bulk output
  const { mibs: directMiBs, cpuPerGiB: directCpu } = await streamMiBs(direct, daemon.child.pid);
  const { mibs: relayMiBs, cpuPerGiB: relayCpu } = await streamMiBs(viaRelay, daemon.child.pid);
  console.log(`${STREAM_BYTES / MiB} MiB via exec.follow: through the relay ${relayMiBs.toFixed(0)} MiB/s | direct ws ${directMiBs.toFixed(0)} MiB/s → ${(relayMiBs / directMiBs).toFixed(2)}× (goal ≥ 0.8×)`);
  console.log(`daemon CPU per GiB followed: through the relay ${relayCpu.toFixed(2)} s | direct ws ${directCpu.toFixed(2)} s → ${(relayCpu / directCpu).toFixed(2)}×`);

  // 3. scale: simulated registrations
  const names = Array.from({ length: REGISTRATIONS }, (_, i) => `sim-${String(i).padStart(4, '0')}`);
  const credentials = [];
  for (let i = 0; i < names.length; i += 50) credentials.push(...(await Promise.all(names.slice(i, i + 50).map((n) => admin.enroll('environment', n)))).map((r) => r.credential));
  const sims = [];
  for (let i = 0; i < names.length; i += 100) {
    await Promise.all(
      names.slice(i, i + 100).map(
        (name, j) =>
          new Promise((resolve, reject) => {
            const ws = new WebSocket(`${relayUrl}/v1/environments/${name}/register`, { headers: { Authorization: `Bearer ${credentials[i + j]}` }, perMessageDeflate: false });
            ws.once('message', () => resolve());
            ws.once('error', reject);
            sims.push(ws);
          }),
      ),
    );
  }
  const keepalive = setInterval(() => {
    for (const ws of sims) if (ws.readyState === WebSocket.OPEN) ws.ping();
  }, 1000);
  const online = (await admin.status('online')).length;
  const relayRss = rssMiB(relay.child.pid);
  const samples = [];
  for (let i = 0; i < PAIRINGS; i++) {
    const t0 = process.hrtime.bigint();
    const channel = await connectCloud(cloudOptions);
    samples.push(ms(t0));
    channel.close();
  }
  const pairing = summary(samples);
  const relayRssAfter = rssMiB(relay.child.pid);
  clearInterval(keepalive);
  for (const ws of sims) ws.terminate();
  console.log(
    `${online} environments online (${REGISTRATIONS} simulated + the daemon), each pinging every second: relay RSS ${relayRss} MiB (goal ≤ 300; idle ${relayIdleRss} MiB; ${relayRssAfter} MiB after ${PAIRINGS} pairings) | pairing (relay + TLS + upgrade) p50 ${pairing.p50} ms p99 ${pairing.p99} ms`,
  );

  console.log(
    JSON.stringify({
      bench: 'cloud',
      results: {
        exec_true_relay_ms: relayRtt,
        exec_true_direct_ms: directRtt,
        exec_true_ratio: +(relayRtt.p50 / directRtt.p50).toFixed(2),
        follow_relay_mib_s: +relayMiBs.toFixed(1),
        follow_direct_mib_s: +directMiBs.toFixed(1),
        follow_ratio: +(relayMiBs / directMiBs).toFixed(2),
        daemon_cpu_s_per_gib_relay: +relayCpu.toFixed(2),
        daemon_cpu_s_per_gib_direct: +directCpu.toFixed(2),
        registrations_online: online,
        relay_rss_idle_mib: relayIdleRss,
        relay_rss_registrations_mib: relayRss,
        relay_rss_after_pairings_mib: relayRssAfter,
        pairing_ms: pairing,
      },
    }),
  );
} finally {
  await Promise.all(closers.map((m) => m.close()));
  await Promise.all(
    children.reverse().map(
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
