// Runs one command on the `local` machine through the kernel and prints its events as JSON lines.
// Usage: node examples/run.mjs <program> [args…]      e.g. node examples/run.mjs uname -a
import { createKernel } from '@tether/core';
import processPlugin from '@tether/plugin-process';

const argv = process.argv.slice(2);
if (argv.length === 0) {
  process.stderr.write('usage: node examples/run.mjs <program> [args…]\n');
  process.exit(2);
}
const kernel = await createKernel({ plugins: [processPlugin] });
const exec = kernel.machine('local').exec;
const { id } = await exec.start({ argv });
exec.follow(id).subscribe((event) => {
  const line = { seq: event.seq, type: event.type };
  if (event.type === 'OutputProduced') Object.assign(line, { stream: event.data.stream, text: Buffer.from(event.data.data).toString('utf8') });
  else Object.assign(line, event.data);
  process.stdout.write(`${JSON.stringify(line)}\n`);
});
const state = await exec.wait(id);
await kernel.close();
process.exitCode = state.exitCode ?? 1;
