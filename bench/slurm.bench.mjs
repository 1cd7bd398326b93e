// The Slurm backend on a real single-node Slurm (started here on loopback, as the tests do), with
// the plugin's default poll intervals, each beside a floor measured in the same run:
//  1. a trivial job (`true`) through tether (exec start → finished) vs `sbatch --wait` of the same
//     job (goal ≤ 1.2×), rounds alternated;
//  2. output latency: from a line written by the job (its own clock, the same machine) to its
//     OutputProduced event at a follower (goal p50 ≤ 1 s).
// Skipped, saying why, where Slurm is not installed or cannot be started.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createKernel } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import slurmPlugin from '@tether/plugin-slurm';
import { slurmAvailability, startSlurmCluster } from '@tether/plugin-slurm/testing';
import { ms, summary } from './timing.mjs';

const ROUNDS = Number(process.env.BENCH_SLURM_ROUNDS ?? 10);
const LINES = Number(process.env.BENCH_SLURM_LINES ?? 40);
const run = promisify(execFile);

const availability = await slurmAvailability();
if (!availability.ok) {
  console.log(`slurm: skipped — ${availability.reason}`);
  console.log(JSON.stringify({ bench: 'slurm', skipped: availability.reason }));
  process.exit(0);
}

const cluster = await startSlurmCluster();
const dir = mkdtempSync(join(tmpdir(), 'tether-bench-slurm-'));
const store = await LevelEventStore.open(join(dir, 'store'));
// The plugin's defaults for polling (squeue every 250 ms, output files every 100 ms).
const kernel = await createKernel({ plugins: [{ plugin: slurmPlugin, config: { slurmConf: cluster.conf, spoolDir: join(cluster.dir, 'shared', 'jobs') } }], store });
const exec = kernel.machine('local').exec;

try {
  // 1. trivial job: tether vs sbatch --wait, alternated so both see the same load.
  const sbatchWait = async () => {
    await run('sbatch', ['--wait', '--quiet', `--output=${join(cluster.dir, 'shared', 'floor.out')}`, `--chdir=${dir}`, '--wrap', 'true'], { env: cluster.env });
  };
  const tetherJob = async () => {
    const state = await exec.wait((await exec.start({ argv: ['true'], cwd: dir })).id);
    if (state.endReason !== 'exited' || state.exitCode !== 0) throw new Error(`the job ended ${state.endReason} ${state.exitCode}`);
  };
  await sbatchWait();
  await tetherJob();
  const floor = [];
  const ours = [];
  for (let i = 0; i < ROUNDS; i++) {
    let t0 = process.hrtime.bigint();
    await sbatchWait();
    floor.push(ms(t0));
    t0 = process.hrtime.bigint();
    await tetherJob();
    ours.push(ms(t0));
  }
  const f = summary(floor);
  const t = summary(ours);
  const ratio = +(t.p50 / f.p50).toFixed(2);
  console.log(`trivial job: tether p50 ${t.p50} ms p99 ${t.p99} ms | sbatch --wait p50 ${f.p50} ms p99 ${f.p99} ms | ratio ${ratio} (goal ≤ 1.2)`);

  // 2. line → follower latency: the job prints its clock (ns) every 100 ms.
  const started = await exec.start({ command: `for i in $(seq 1 ${LINES}); do date +%s%N; sleep 0.1; done`, cwd: dir });
  const latencies = [];
  await new Promise((resolve, reject) => {
    let rest = '';
    exec.follow(started.id).subscribe({
      next: (event) => {
        if (event.type !== 'OutputProduced' || event.data.stream !== 'stdout') return;
        const now = BigInt(Date.now()) * 1_000_000n;
        const lines = (rest + Buffer.from(event.data.data).toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (/^\d+$/.test(line)) latencies.push(Number(now - BigInt(line)) / 1e6);
      },
      error: reject,
      complete: resolve,
    });
  });
  if (latencies.length !== LINES) throw new Error(`followed ${latencies.length} lines, expected ${LINES}`);
  const latency = summary(latencies);
  console.log(`line → follower latency: p50 ${latency.p50} ms p99 ${latency.p99} ms over ${latency.n} lines (goal p50 ≤ 1000 ms)`);

  console.log(
    JSON.stringify({
      bench: 'slurm',
      results: {
        trivial_job_ms: t,
        sbatch_wait_ms: f,
        trivial_job_p50_ratio: ratio,
        line_latency_ms: latency,
      },
    }),
  );
} finally {
  await kernel.close();
  await store.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
