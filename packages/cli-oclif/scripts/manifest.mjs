// Writes oclif.manifest.json, so `tether` finds its commands without scanning dist/commands at
// start-up. Produces what `oclif manifest` would, with @oclif/core's own loader.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Plugin, settings } from '@oclif/core';

settings.enableAutoTranspile = false;
const root = fileURLToPath(new URL('..', import.meta.url));
const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true });
await plugin.load();
const manifest = { ...plugin.manifest, version: plugin.version };
const count = Object.keys(manifest.commands).length;
if (count === 0) throw new Error('no commands found: build first (tsc -b)');
await writeFile(new URL('../oclif.manifest.json', import.meta.url), `${JSON.stringify(manifest, null, 2)}\n`);
process.stdout.write(`oclif.manifest.json: ${count} commands\n`);
