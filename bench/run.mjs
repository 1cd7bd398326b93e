// Runs every bench/*.bench.mjs (or those whose name contains an argument) one after another,
// each in its own Node process so one bench's heap and handles do not skew the next, then prints
// every bench's JSON result line together.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2);
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

const results = [];
let failed = 0;
for (const file of benches) {
  process.stdout.write(`\n== ${file}\n`);
  const child = spawn(process.execPath, ['--expose-gc', `${dir}${file}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    process.stdout.write(d);
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  if (code !== 0) failed++;
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{"bench"'));
  if (line) results.push(JSON.parse(line));
}
process.stdout.write(`\n== results\n${results.map((r) => JSON.stringify(r)).join('\n')}\n`);
process.exitCode = failed ? 1 : 0;
