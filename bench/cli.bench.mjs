// Cold start of the `tether` CLI, a new process per call as an agent makes them, with the local
// daemon already up, each beside floors measured in the same run:
//  - `tether noop`: a hidden command that does nothing, run the same way (oclif, the CLI's
//    manifest and plugins; no tether code): the floor the CLI is compared with;
//  - `node -e 0`: a bare Node start, for scale.
// Measured: `tether exec result --id X` and `tether exec run --cmd true`, with the client runtime
// bundle (the default build) and without it (TETHER_NO_BUNDLE=1: the plain modules).
import { spawnSync } from 'node:child_process';
import { cliSandbox } from './cliSandbox.mjs';
import { summary } from './timing.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const { tether, remove } = cliSandbox('tether-cli-bench');

try {
  // Start the local daemon and record one execution to look up.
  tether(['machine', 'check']);
  const id = JSON.parse(tether(['exec', 'start', '--cmd', 'true']).stdout).exec_id;
  const noBundle = { TETHER_NO_BUNDLE: '1' };
  const cases = {
    node_floor: () => {
      const t0 = process.hrtime.bigint();
      spawnSync(process.execPath, ['-e', '0']);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    },
    noop: () => tether(['noop']).elapsed,
    exec_result: () => tether(['exec', 'result', '--id', id]).elapsed,
    exec_run_true: () => tether(['exec', 'run', '--cmd', 'true']).elapsed,
    exec_result_unbundled: () => tether(['exec', 'result', '--id', id], noBundle).elapsed,
    exec_run_true_unbundled: () => tether(['exec', 'run', '--cmd', 'true'], noBundle).elapsed,
  };
  // Warm the file cache, then interleave the cases so drift in machine load hits them alike.
  for (const run of Object.values(cases)) run();
  const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < ROUNDS; i++) for (const [name, run] of Object.entries(cases)) samples[name].push(run());

  const results = {};
  for (const [name, list] of Object.entries(samples)) results[name] = summary(list);
  const floor = results.noop.p50;
  for (const name of ['exec_result', 'exec_run_true', 'exec_result_unbundled', 'exec_run_true_unbundled']) {
    results[`${name}_vs_noop`] = +(results[name].p50 / floor).toFixed(2);
  }
  for (const [name, r] of Object.entries(results)) {
    if (typeof r === 'object') process.stdout.write(`${name.padEnd(26)} p50 ${r.p50.toFixed(1).padStart(7)} ms  p99 ${r.p99.toFixed(1).padStart(7)} ms\n`);
  }
  process.stdout.write(
    `vs the bare oclif command (noop): exec result ${results.exec_result_vs_noop}x, exec run --cmd true ${results.exec_run_true_vs_noop}x ` +
      `(without the bundle: ${results.exec_result_unbundled_vs_noop}x, ${results.exec_run_true_unbundled_vs_noop}x)\n`,
  );
  process.stdout.write(`${JSON.stringify({ bench: 'cli', results })}\n`);
} finally {
  try {
    tether(['daemon', 'stop']);
  } catch {
    // no daemon left to stop
  }
  remove();
}
