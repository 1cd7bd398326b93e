// Bundles dist/runtime.js (the kernel, the ws client, the config parser: everything heavy the
// CLI's client side imports) into dist/runtime.bundle.js, so a cold `tether exec result` reads
// one file instead of several hundred. Optional: without rolldown (it comes with vitest) the CLI
// imports the plain modules, only slower.
//
// The bundle is used only while it is current: dist/runtime.bundle.json records the build stamps
// (tsbuildinfo mtimes) of the workspace packages inside it, and src/runtimeLoader.ts falls back
// to the plain modules when one of them has been rebuilt since.
//
// What runtime.ts imports lazily (the YAML config parser, the local filesystem backend) goes into
// chunks of their own under dist/runtime-chunks/, read only by the commands that use it.
//
// @tether/core's whole public API is a second entry, dist/core.bundle.js, sharing its modules with
// the runtime: a third-party plugin loaded by the bundled runtime gets it for its
// `import '@tether/core'` (src/coreRedirect.ts), so the process holds one copy of core, not the
// bundled one plus the package's own.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/runtime.bundle.js`;
const coreOut = `${root}dist/core.bundle.js`;
const chunks = `${root}dist/runtime-chunks`;
const stampsFile = `${root}dist/runtime.bundle.json`;
/** Workspace projects whose built output goes into the bundle (relative to this package). */
const projects = ['.', '../core', '../transport-ws', '../transport-ssh', '../transport-cloud', '../../plugins/filesystem'];

let rolldown;
try {
  rolldown = await import('rolldown');
} catch {
  await rm(out, { force: true });
  await rm(coreOut, { force: true });
  await rm(chunks, { recursive: true, force: true });
  await rm(stampsFile, { force: true });
  process.stdout.write('runtime bundle: rolldown not installed, the CLI will import the plain modules\n');
  process.exit(0);
}

// rxjs's package exports send Node to its CommonJS build, which cannot be tree-shaken (300 KiB of
// operators the client never calls); its ES modules can.
const rxjs = `${dirname(createRequire(import.meta.url).resolve('rxjs/package.json'))}/dist/esm/index.js`;

await rm(chunks, { recursive: true, force: true });
await rolldown.build({
  input: { 'runtime.bundle': `${root}dist/runtime.js`, 'core.bundle': fileURLToPath(import.meta.resolve('@tether/core')) },
  platform: 'node',
  logLevel: 'warn',
  resolve: { alias: { rxjs } },
  // Native or lazily loaded at run time, and never on a client's path.
  // ssh2 loads optional native crypto; it stays a plain import of the ssh chunk. @peculiar/x509
  // only makes a daemon's certificate (daemon side, never a client's path).
  external: ['@tether/store-level', 'classic-level', 'bufferutil', 'utf-8-validate', 'ssh2', 'cpu-features', '@peculiar/x509'],
  output: { dir: `${root}dist`, entryFileNames: '[name].js', chunkFileNames: 'runtime-chunks/[name]-[hash].js', format: 'esm', minify: true },
});
const stamps = {};
for (const project of projects) {
  const info = `${project}/tsconfig.tsbuildinfo`;
  stamps[info] = (await stat(`${root}${info}`).catch(() => undefined))?.mtimeMs ?? null;
}
await writeFile(stampsFile, `${JSON.stringify({ stamps }, null, 2)}\n`);
const { size } = await stat(out);
process.stdout.write(`runtime bundle: dist/runtime.bundle.js (${Math.round(size / 1024)} KiB)\n`);
