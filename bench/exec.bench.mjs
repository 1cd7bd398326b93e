// Process backend through LocalMachine, each beside a floor measured in the same run:
//  1. `exec true` round trip (start → finished) vs a raw child_process.spawn('true') round trip;
//  2. output throughput of `head -c 1G /dev/zero` into the LevelDB store vs a raw pipe read;
//  3. `exec true` latency while another execution floods output vs idle.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKernel } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import { ms, timeMany } from './timing.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const FLOOD_BYTES = Number(process.env.BENCH_FLOOD_BYTES ?? 1024 ** 3);


function rawSpawnTrue() {
  return new Promise((resolve, reject) => {
    const child = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.on('error', reject);
    child.on('close', resolve);
  });
}

function rawPipeRead(bytes) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('head', ['-c', String(bytes), '/dev/zero'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let n = 0;
    child.stdout.on('data', (d) => (n += d.length));
    child.on('error', reject);
    child.on('close', () => resolve({ bytes: n, seconds: ms(t0) / 1000 }));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'tether-bench-exec-'));
const store = await LevelEventStore.open(join(dir, 'store'), { maxOutputBytesPerExecution: 64 * 1024 ** 3 });
const kernel = await createKernel({ plugins: [processPlugin], store });
const exec = kernel.machine('local').exec;
const run = async (spec) => exec.wait((await exec.start(spec)).id);

try {
  // 1. exec true round trip
  const raw = await timeMany(rawSpawnTrue, ROUNDS);
  const tether = await timeMany(() => run({ argv: ['true'] }), ROUNDS);
  console.log(`exec true: tether p50 ${tether.p50} ms p99 ${tether.p99} ms | raw spawn p50 ${raw.p50} ms p99 ${raw.p99} ms | p50 ratio ${(tether.p50 / raw.p50).toFixed(2)} (target ≤ 2)`);

  // 2. output throughput into LevelDB
  const pipe = await rawPipeRead(FLOOD_BYTES);
  const t0 = process.hrtime.bigint();
  const flood = await run({ argv: ['head', '-c', String(FLOOD_BYTES), '/dev/zero'] });
  const seconds = ms(t0) / 1000;
  if (flood.bytes.stdout !== FLOOD_BYTES) throw new Error(`recorded ${flood.bytes.stdout} bytes, expected ${FLOOD_BYTES}`);
  const mib = FLOOD_BYTES / 1024 ** 2;
  const tetherMiBs = mib / seconds;
  const pipeMiBs = pipe.bytes / 1024 ** 2 / pipe.seconds;
  console.log(`output ${mib} MiB: tether → LevelDB ${tetherMiBs.toFixed(0)} MiB/s | raw pipe read ${pipeMiBs.toFixed(0)} MiB/s | ratio ${(tetherMiBs / pipeMiBs).toFixed(2)} (target ≥ 100 MiB/s)`);

  // 3. spawn latency under an output flood
  const idle = await timeMany(() => run({ argv: ['true'] }), 100);
  const flooding = await exec.start({ argv: ['cat', '/dev/zero'] });
  const busy = await timeMany(() => run({ argv: ['true'] }), 100);
  await exec.cancel(flooding.id, { graceMs: 1000 });
  console.log(`exec true while another execution floods: p50 ${busy.p50} ms vs idle ${idle.p50} ms | ratio ${(busy.p50 / idle.p50).toFixed(2)} (target ≤ 2)`);

  console.log(
    JSON.stringify({
      bench: 'exec',
      results: {
        exec_true_ms: tether,
        raw_spawn_ms: raw,
        exec_true_p50_ratio: +(tether.p50 / raw.p50).toFixed(2),
        output_mib_s: +tetherMiBs.toFixed(1),
        raw_pipe_mib_s: +pipeMiBs.toFixed(1),
        output_ratio: +(tetherMiBs / pipeMiBs).toFixed(2),
        spawn_under_flood_ms: busy,
        spawn_idle_ms: idle,
        spawn_flood_p50_ratio: +(busy.p50 / idle.p50).toFixed(2),
      },
    }),
  );
} finally {
  await kernel.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
