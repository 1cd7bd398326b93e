// Builds the dashboard's page into dist/public: app.js (preact, htm, uPlot, anser and the page's
// own code in one minified ES module) and app.css (the page's styles and uPlot's). Everything the
// browser loads comes from the dashboard itself: no CDN, it works offline.
import { mkdir, readFile, writeFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'public');
await mkdir(out, { recursive: true });
await build({
  input: join(root, 'page', 'app.ts'),
  platform: 'browser',
  logLevel: 'warn',
  output: { file: join(out, 'app.js'), format: 'esm', minify: true, sourcemap: false },
});
const uplotCss = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist', 'uPlot.min.css');
await writeFile(join(out, 'app.css'), `${await readFile(join(root, 'page', 'app.css'), 'utf8')}\n${await readFile(uplotCss, 'utf8')}\n`);
const { size } = await stat(join(out, 'app.js'));
process.stdout.write(`dashboard page: dist/public/app.js (${Math.round(size / 1024)} KiB)\n`);
