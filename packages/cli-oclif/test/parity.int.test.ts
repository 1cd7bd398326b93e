// The codex-remote commands tether lacked: exec logs --full / --format text, machine add/remove.
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, type CliEnv } from './support.js';

let cli: CliEnv;

beforeAll(() => {
  cli = cliEnv('tether-cli-parity-');
});
afterAll(async () => {
  await cli?.cleanup();
});

describe('exec logs --full and --format', () => {
  it('--full prints every line from the start, past the default tail and the 10000-line page; --format text prints the lines alone', async () => {
    const run = await cli.run(['exec', 'run', '--cmd', 'seq 1 25000; printf "no newline"; echo err >&2']);
    expect(run.code).toBe(0);
    const id = run.lines()[0]!['exec_id'];
    const full = await cli.run(['exec', 'logs', '--id', id, '--full']);
    const lines = full.lines();
    expect(lines).toHaveLength(25001);
    expect(lines[0]).toEqual({ type: 'log', stream: 'stdout', line: '1', seq: expect.any(Number) });
    expect(lines.at(-1)).toMatchObject({ line: 'no newline' });
    const text = await cli.run(['exec', 'logs', '--id', id, '--full', '--format', 'text', '--stream', 'both']);
    // Text mode keeps each line on the stream it came from: stdout's on stdout, stderr's on stderr.
    const expected = [...Array.from({ length: 25000 }, (_, i) => String(i + 1)), 'no newline'];
    expect(text.stdout.split('\n').slice(0, -1).sort()).toEqual(expected.sort());
    expect(text.stderr).toBe('err\n');
    const tail = await cli.run(['exec', 'logs', '--id', id, '--format', 'text', '--tail-lines', '2']);
    expect(tail.stdout).toBe('25000\nno newline\n');
    const both = await cli.run(['exec', 'logs', '--id', id, '--full', '--tail', '10']);
    expect(both.code).toBe(2);
  });
});

describe('machine add / remove', () => {
  it('adds to the config file keeping its comments, refuses a duplicate without --force, removes', async () => {
    cli.writeConfig('# my machines\nmachines:\n  - name: old # keep me\n    addr: ws://127.0.0.1:7337\n    token: ' + 'a'.repeat(32) + '\n');
    const added = await cli.run(['machine', 'add', '--name', 'gpu1', '--ssh', 'alice@gpu1.example', '--label', 'gpu', '--daemon-port', '7400']);
    expect(added.json()).toEqual({ ok: true, action: 'added', name: 'gpu1', config: cli.configFile });
    const text = readFileSync(cli.configFile, 'utf8');
    expect(text).toContain('# my machines');
    expect(text).toContain('# keep me');
    const listed = await cli.run(['machine', 'list', '--timeout', '1s']);
    expect(listed.json().machines.map((m: { name: string }) => m.name)).toEqual(['local', 'old', 'gpu1']);
    const dup = await cli.run(['machine', 'add', '--name', 'gpu1', '--ssh', 'x']);
    expect([dup.code, dup.stdout, dup.error().code]).toEqual([2, '', 'INVALID_ARGUMENT']);
    const replaced = await cli.run(['machine', 'add', '--name', 'gpu1', '--addr', 'ws://127.0.0.1:9', '--token', 'b'.repeat(32), '--force']);
    expect(replaced.json()).toMatchObject({ action: 'replaced' });
    const bad = await cli.run(['machine', 'add', '--name', 'bad name', '--ssh', 'x']);
    expect([bad.code, bad.error().code]).toEqual([3, 'CONFIG_INVALID']);
    expect(readFileSync(cli.configFile, 'utf8')).not.toContain('bad name');
    expect((await cli.run(['machine', 'remove', '--name', 'old'])).json()).toEqual({ ok: true, action: 'removed', name: 'old', config: cli.configFile });
    const gone = await cli.run(['machine', 'remove', '--name', 'old']);
    expect([gone.code, gone.error().code]).toEqual([4, 'UNKNOWN_MACHINE']);
    expect(readFileSync(cli.configFile, 'utf8')).toContain('# my machines');
  });

  it('creates a missing config file with mode 0600', async () => {
    const path = `${cli.root}/new/config.yaml`;
    expect((await cli.run(['machine', 'add', '--config', path, '--name', 'box', '--addr', 'ws://127.0.0.1:7337', '--token', 'c'.repeat(32)])).json()).toMatchObject({ ok: true, action: 'added' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toContain('name: box');
  });
});
