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
        'commands',
        'version',
        'plugins:install',
        'daemon:bridge',
        'daemon:fingerprint',
        'daemon:serve',
        'daemon:status',
        'daemon:stop',
        'dashboard',
        'exec:cancel',
        'exec:doctor',
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
        'machine:add',
        'machine:check',
        'machine:import',
        'machine:list',
        'machine:remove',
        'machine:ssh',
        'machine:trust',
        'machine:up',
        'mcp',
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

  it('oclif conventions: tether help TOPIC COMMAND, -h on every command, --version', async () => {
    const help = await cli.run(['help', 'exec', 'start']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/USAGE\s+\$ tether exec start/);
    expect(help.stdout).toMatch(/--id=<value>/);
    for (const argv of [['exec', 'result', '-h'], ['machine', 'list', '-h'], ['sync', 'push', '-h']]) {
      const short = await cli.run(argv);
      expect([short.code, short.stderr], argv.join(' ')).toEqual([0, '']);
      expect(short.stdout).toMatch(new RegExp(`USAGE\\s+\\$ tether ${argv.slice(0, 2).join(' ')}`));
    }
    expect((await cli.run(['--version'])).stdout).toMatch(/^@tether\/cli\/\d+\.\d+\.\d+ /);
  });

  it('an unknown command suggests the closest one, in the JSON error (exit 2)', async () => {
    const typo = await cli.run(['exec', 'strat']);
    expect([typo.code, typo.stdout]).toEqual([2, '']);
    expect(typo.error()).toMatchObject({ code: 'USAGE', message: 'unknown command: exec strat (did you mean exec start?)', hint: 'run tether exec start --help' });
    const far = await cli.run(['frobnicate']);
    expect(far.error().hint).toMatch(/topics: .*\bsync\b/);
    expect(far.error().hint).not.toMatch(/noop/);
  });

  it('tether commands and tether version print JSON; the hidden noop is not listed', async () => {
    const { commands } = (await cli.run(['commands'])).json<{ commands: Array<{ id: string; summary: string | null }> }>();
    const ids = commands.map((c) => c.id);
    expect(ids).toEqual(expect.arrayContaining(['exec start', 'sync push', 'plugins install', 'help', 'autocomplete', 'commands', 'version']));
    expect(ids).not.toContain('noop');
    const version = (await cli.run(['version'])).json();
    expect(version).toMatchObject({ version: manifest.version, node: process.versions.node, platform: process.platform });
  });

  it('generates the shell completion scripts', async () => {
    for (const shell of ['bash', 'zsh']) {
      const script = await cli.run(['autocomplete', 'script', shell]);
      expect([script.code, script.stderr], shell).toEqual([0, '']);
      expect(script.stdout).toMatch(/TETHER_AC_/);
    }
  });

  it("errors of plugins' commands are JSON errors too", async () => {
    const inspect = await cli.run(['plugins', 'inspect', 'not-installed-anywhere']);
    expect(inspect.code).toBe(1);
    expect(inspect.error()).toMatchObject({ code: 'COMMAND_FAILED', message: expect.stringMatching(/not-installed-anywhere/), hint: 'see tether plugins inspect --help' });
    const uninstall = await cli.run(['plugins', 'uninstall', 'not-installed-anywhere']);
    expect(uninstall.code).toBe(2);
    expect(uninstall.error().message).toMatch(/not-installed-anywhere is not installed/);
  });
});
