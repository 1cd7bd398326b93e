// Executions under supervisors (the daemon's default) beside the direct-child path (the process
// plugin without `supervisorDir`), each pair measured in the same run:
//  1. `exec true` round trip (start → finished) through the kernel with a LevelDB store;
//  2. output ingest of `head -c 1G /dev/zero` into the store, BENCH_INGEST_ROUNDS pairs (default
//     3) taking turns at going first; the ratio is the median of the pairs' ratios (one pair on a
//     machine that something else keeps busy varies by ±30%);
//  3. re-attach: a daemon process with 200 running executions is SIGKILLed and started again;
//     its time to serve is compared with a daemon starting on an empty data dir.
// Goals (issue 10): latency ≤ 1.2× and throughput ≥ 0.9× of the direct path; re-attach ≤ 2 s.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKernel } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import { readToken, remoteMachine } from '@tether/transport-ws';
import { ms, timeMany } from './timing.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const FLOOD_BYTES = Number(process.env.BENCH_FLOOD_BYTES ?? 1024 ** 3);
const RUNNING = Number(process.env.BENCH_REATTACH ?? 200);
const INGEST_ROUNDS = Number(process.env.BENCH_INGEST_ROUNDS ?? 3);
const DAEMON_MAIN = fileURLToPath(new URL('../packages/transport-ws/dist/daemonMain.js', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'tether-bench-sup-'));

async function kernelWith(name, config) {
  const store = await LevelEventStore.open(join(dir, name), { maxOutputBytesPerExecution: 64 * 1024 ** 3 });
  const kernel = await createKernel({ plugins: [{ plugin: processPlugin, config }], store });
  const exec = kernel.machine('local').exec;
  return { kernel, run: async (spec) => exec.wait((await exec.start(spec)).id) };
}

async function ingest(run) {
  const t0 = process.hrtime.bigint();
  const state = await run({ argv: ['head', '-c', String(FLOOD_BYTES), '/dev/zero'] });
  const seconds = ms(t0) / 1000;
  if (state.bytes.stdout !== FLOOD_BYTES) throw new Error(`recorded ${state.bytes.stdout} bytes, expected ${FLOOD_BYTES}`);
  return FLOOD_BYTES / 1024 ** 2 / seconds;
}

/** Starts daemonMain.js on `dataDir`; resolves with the child and its time to serve (ms). */
function daemon(dataDir) {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [DAEMON_MAIN, '--listen', join(dataDir, '..', 'bench.sock'), '--data-dir', dataDir, '--plugin', '@tether/plugin-process'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ child, exited, readyMs: ms(t0), info: JSON.parse(out.split('\n')[0]) });
    });
    void exited.then((code) => reject(new Error(`daemon exited (${code}) before it was ready`)));
  });
}

try {
  // 1 and 2, direct and supervised side by side (the same store implementation, separate stores).
  const direct = await kernelWith('direct', {});
  const supervised = await kernelWith('supervised', { supervisorDir: join(dir, 'supervisors'), warmSupervisors: 2 });
  const directTrue = await timeMany(() => direct.run({ argv: ['true'] }), ROUNDS);
  const supervisedTrue = await timeMany(() => supervised.run({ argv: ['true'] }), ROUNDS);
  const latencyRatio = supervisedTrue.p50 / directTrue.p50;
  console.log(`exec true: supervised p50 ${supervisedTrue.p50} ms p99 ${supervisedTrue.p99} ms | direct p50 ${directTrue.p50} ms p99 ${directTrue.p99} ms | p50 ratio ${latencyRatio.toFixed(2)} (goal ≤ 1.2)`);
  const pairs = [];
  for (let round = 0; round < INGEST_ROUNDS; round++) {
    const pair = {};
    if (round % 2 === 0) {
      pair.direct = await ingest(direct.run);
      pair.supervised = await ingest(supervised.run);
    } else {
      pair.supervised = await ingest(supervised.run);
      pair.direct = await ingest(direct.run);
    }
    pair.ratio = pair.supervised / pair.direct;
    pairs.push(pair);
    console.log(`ingest ${FLOOD_BYTES / 1024 ** 2} MiB, pair ${round + 1}: supervised ${pair.supervised.toFixed(0)} MiB/s | direct ${pair.direct.toFixed(0)} MiB/s | ratio ${pair.ratio.toFixed(2)}`);
  }
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
  const supervisedMiBs = median(pairs.map((p) => p.supervised));
  const directMiBs = median(pairs.map((p) => p.direct));
  const ingestRatio = median(pairs.map((p) => p.ratio));
  console.log(`ingest ${FLOOD_BYTES / 1024 ** 2} MiB, median of ${pairs.length}: supervised ${supervisedMiBs.toFixed(0)} MiB/s | direct ${directMiBs.toFixed(0)} MiB/s | ratio ${ingestRatio.toFixed(2)} (goal ≥ 0.9)`);
  await direct.kernel.close();
  await supervised.kernel.close();

  // 3. re-attach after kill -9, beside a start on an empty data dir.
  // The floor: the median of three starts on a data dir with nothing to re-attach.
  const floors = [];
  for (let i = 0; i < 3; i++) {
    const empty = await daemon(join(dir, 'empty', 'data'));
    floors.push(empty.readyMs);
    empty.child.kill('SIGKILL');
    await empty.exited;
  }
  const floorMs = floors.sort((a, b) => a - b)[1];

  const dataDir = join(dir, 'busy', 'data');
  const first = await daemon(dataDir);
  const machine = remoteMachine(first.info.url, { token: await readToken(first.info.tokenFile) });
  const ids = [];
  for (let i = 0; i < RUNNING; i++) ids.push((await machine.exec.start({ argv: ['sleep', '3600'] })).id);
  for (const id of ids) if ((await machine.exec.get(id)).status !== 'running') throw new Error(`${id} is not running`);
  await machine.close();
  first.child.kill('SIGKILL');
  await first.exited;
  const second = await daemon(dataDir);
  const check = remoteMachine(second.info.url, { token: await readToken(second.info.tokenFile) });
  const running = (await check.exec.list({ status: 'running', limit: RUNNING + 10 })).items.length;
  await check.close();
  if (running !== RUNNING) throw new Error(`${running} of ${RUNNING} running after the restart`);
  const reattachMs = second.readyMs - floorMs;
  console.log(`re-attach ${RUNNING} running executions after kill -9: daemon ready in ${second.readyMs.toFixed(0)} ms vs ${floorMs.toFixed(0)} ms on an empty data dir | re-attach ${reattachMs.toFixed(0)} ms (goal ≤ 2000)`);
  // Stop it and cancel what it runs.
  second.child.kill('SIGUSR2');
  await second.exited;

  console.log(
    JSON.stringify({
      bench: 'supervisor',
      results: {
        exec_true_supervised_ms: supervisedTrue,
        exec_true_direct_ms: directTrue,
        exec_true_p50_ratio: +latencyRatio.toFixed(2),
        ingest_supervised_mib_s: +supervisedMiBs.toFixed(1),
        ingest_direct_mib_s: +directMiBs.toFixed(1),
        ingest_ratio: +ingestRatio.toFixed(2),
        ingest_pair_ratios: pairs.map((p) => +p.ratio.toFixed(2)),
        reattach_running: RUNNING,
        reattach_ready_ms: +second.readyMs.toFixed(0),
        empty_ready_ms: +floorMs.toFixed(0),
        reattach_ms: +reattachMs.toFixed(0),
      },
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
