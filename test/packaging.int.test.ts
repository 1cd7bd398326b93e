// Every workspace package packs into a tarball a third party can install: its built entry points
// and README, no sources or tests; plugins and transports take @tether/core as a peer (the host's
// copy), and a client of @tether/transport-ws is not made to install LevelDB.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const workspaces: string[] = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).workspaces;
const pjson = (dir: string) => JSON.parse(readFileSync(new URL(`../${dir}/package.json`, import.meta.url), 'utf8')) as Record<string, any>;

describe('packages', () => {
  it('each packs with its dist entry points and README, without sources or tests', async () => {
    const { stdout } = await promisify(execFile)('npm', ['pack', '--workspaces', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, maxBuffer: 64 << 20 });
    const packed = JSON.parse(stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
    expect(packed.map((p) => p.name).sort()).toEqual(workspaces.map((w) => pjson(w)['name'] as string).sort());
    for (const dir of workspaces) {
      const manifest = pjson(dir);
      const files = packed.find((p) => p.name === manifest['name'])!.files.map((f) => f.path);
      expect(files, manifest['name']).toEqual(expect.arrayContaining(['package.json', 'README.md']));
      for (const entry of Object.values(manifest['exports'] as Record<string, string | { import?: string; default?: string }>)) {
        const target = typeof entry === 'string' ? entry : (entry.import ?? entry.default);
        if (target !== undefined && !target.endsWith('.json')) expect(files, manifest['name']).toContain(target.replace(/^\.\//, ''));
      }
      expect(files.filter((f) => f.startsWith('src/') || /\.test\.(js|ts)$/.test(f)), manifest['name']).toEqual([]);
      expect(manifest['version'], manifest['name']).toMatch(/^\d+\.\d+\.\d+/);
    }
  });

  it('plugins and transports depend on @tether/core as a peer; the ws client does not pull in LevelDB', () => {
    for (const dir of workspaces) {
      const manifest = pjson(dir);
      if (manifest['name'] === '@tether/core' || manifest['name'] === '@tether/cli') continue;
      expect(manifest['peerDependencies']?.['@tether/core'], manifest['name']).toBeDefined();
      expect(manifest['dependencies']?.['@tether/core'], manifest['name']).toBeUndefined();
    }
    const ws = pjson('packages/transport-ws');
    expect(ws['dependencies']?.['@tether/store-level']).toBeUndefined();
    expect(ws['peerDependenciesMeta']?.['@tether/store-level']).toEqual({ optional: true });
  });
});
