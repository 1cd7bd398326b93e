#!/usr/bin/env node
// Soak: the fault rounds of test/supervisorFaults.int.test.ts, many more of them.
//   node bench/supervisor.soak.mjs [ROUNDS=1000] [LANES=2]
// Each round SIGKILLs a daemon at a random moment; afterwards every execution must have ended
// with its real exit code and byte-identical output (or never started), with nothing left
// running. Prints the seed on failure (TETHER_FAULT_SEED reruns it). Run `npm run build` first.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const rounds = Number(process.argv[2] ?? 1000);
const lanes = Number(process.argv[3] ?? 2);
const root = fileURLToPath(new URL('..', import.meta.url));
const started = Date.now();
const run = spawnSync('npx', ['vitest', 'run', '--project', 'integration', 'supervisorFaults'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, TETHER_FAULT_ROUNDS: String(rounds), TETHER_FAULT_LANES: String(lanes) },
});
console.log(JSON.stringify({ rounds, lanes, ok: run.status === 0, seconds: Math.round((Date.now() - started) / 1000) }));
process.exit(run.status ?? 1);
