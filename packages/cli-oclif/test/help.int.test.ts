// What people see (help with examples on every command) and how oclif finds the commands (the
// manifest written at build time, not a scan of dist/commands).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, type CliEnv } from './support.js';

const manifest = JSON.parse(readFileSync(new URL('../oclif.manifest.json', import.meta.url), 'utf8')) as {
  version: string;
  commands: Record<string, { hidden?: boolean; summary?: string; examples?: unknown[]; relativePath?: string[] }>;
};

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv('tether-cli-help-');
});
afterAll(async () => {
  await cli.cleanup();
});

describe('help and the manifest', () => {
  it('lists every command of the contract, each with a summary and examples', () => {
    const ids = Object.keys(manifest.commands).filter((id) => !manifest.commands[id]!.hidden);
    expect(ids.sort()).toEqual(
      [
        'daemon:bridge',
        'daemon:fingerprint',
        'daemon:serve',
        'daemon:status',
        'daemon:stop',
        'exec:cancel',
        'exec:list',
        'exec:logs',
        'exec:result',
        'exec:run',
        'exec:signal',
        'exec:start',
        'exec:watch',
        'exec:write',
        'file:ls',
        'file:mkdir',
        'file:read',
        'file:rm',
        'file:stat',
        'file:write',
        'gpu:status',
        'gpu:wait',
        'machine:check',
        'machine:list',
        'machine:ssh',
        'machine:trust',
        'machine:up',
        'relay:enroll',
        'relay:revoke',
        'relay:serve',
        'relay:status',
        'sync:pull',
        'sync:push',
      ].sort(),
    );
    for (const id of ids) {
      expect(manifest.commands[id]!.summary, id).toBeTruthy();
      expect(manifest.commands[id]!.examples?.length, id).toBeGreaterThan(0);
    }
    expect(manifest.version).toBe(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version);
  });

  it('the client runtime bundle is current, so these tests run what ships (build first: npm run build)', () => {
    const stampsFile = new URL('../dist/runtime.bundle.json', import.meta.url);
    if (!existsSync(stampsFile)) return; // built without rolldown: the CLI runs the plain modules
    const { stamps } = JSON.parse(readFileSync(stampsFile, 'utf8')) as { stamps: Record<string, number> };
    for (const [file, recorded] of Object.entries(stamps)) expect(statSync(new URL(file, new URL('../', import.meta.url))).mtimeMs, file).toBe(recorded);
  });

  it('oclif reads the manifest instead of scanning for commands', async () => {
    const result = await cli.run(['noop'], { env: { DEBUG: 'oclif:config:@tether/cli' } });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/using manifest from .*oclif\.manifest\.json/);
  });

  it('--help shows the flags and examples, and touches no daemon', async () => {
    const help = await cli.run(['exec', 'run', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/USAGE\s+\$ tether exec run/);
    expect(help.stdout).toMatch(/--cmd=<value>/);
    expect(help.stdout).toMatch(/EXAMPLES/);
    expect((await cli.run(['daemon', 'status'])).json()).toMatchObject({ running: false });
  });
});
