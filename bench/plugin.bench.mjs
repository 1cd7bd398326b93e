// Cold start of the `tether` CLI on a machine whose transport comes from a third-party plugin
// (the packed fixture packages/cli-oclif/test/fixtures/tether-plugin-peer, installed with
// `tether plugins install x.tgz`, its @tether/core a peer), a new process per call:
//  - `tether noop`: the bare oclif command, the floor measured in the same run;
//  - `machine check` on the plugin's machine with the plugin given the runtime bundle's core
//    (the default: one copy of core in the process);
//  - the same with TETHER_NO_SHARED_CORE=1: the plugin resolves the package's own core, a
//    second copy beside the bundle's (how it was before).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliRoot, cliSandbox } from './cliSandbox.mjs';
import { summary } from './timing.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const fixture = join(cliRoot, 'test', 'fixtures', 'tether-plugin-peer');
const { root, tether, remove } = cliSandbox('tether-plugin-bench');

try {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--pack-destination', root, '--json'], { cwd: fixture, encoding: 'utf8' }));
  tether(['plugins', 'install', join(root, packed[0].filename)]);
  writeFileSync(join(root, 'config', 'tether', 'config.yaml'), 'machines:\n  - { name: box, transport: inproc }\n');
  const check = (extraEnv) => {
    const { elapsed, stdout } = tether(['machine', 'check', '--machine', 'box'], extraEnv);
    if (!JSON.parse(stdout).daemon_ok) throw new Error(`machine check failed: ${stdout}`);
    return elapsed;
  };
  const cases = {
    noop: () => tether(['noop']).elapsed,
    plugin_check_one_core: () => check({}),
    plugin_check_two_cores: () => check({ TETHER_NO_SHARED_CORE: '1' }),
  };
  // Warm the file cache, then interleave the cases so drift in machine load hits them alike.
  for (const run of Object.values(cases)) run();
  const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < ROUNDS; i++) for (const [name, run] of Object.entries(cases)) samples[name].push(run());

  const results = {};
  for (const [name, list] of Object.entries(samples)) results[name] = summary(list);
  const floor = results.noop.p50;
  results.one_core_vs_noop = +(results.plugin_check_one_core.p50 / floor).toFixed(2);
  results.two_cores_vs_noop = +(results.plugin_check_two_cores.p50 / floor).toFixed(2);
  results.saved_ms_p50 = +(results.plugin_check_two_cores.p50 - results.plugin_check_one_core.p50).toFixed(1);
  for (const [name, r] of Object.entries(results)) {
    if (typeof r === 'object') process.stdout.write(`${name.padEnd(24)} p50 ${r.p50.toFixed(1).padStart(7)} ms  p99 ${r.p99.toFixed(1).padStart(7)} ms\n`);
  }
  process.stdout.write(
    `vs the bare oclif command (noop): one core ${results.one_core_vs_noop}x, two cores ${results.two_cores_vs_noop}x; one core saves ${results.saved_ms_p50} ms (p50)\n`,
  );
  process.stdout.write(`${JSON.stringify({ bench: 'plugin', results })}\n`);
} finally {
  remove();
}
