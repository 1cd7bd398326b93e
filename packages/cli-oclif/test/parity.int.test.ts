// The codex-remote commands, flags and fields tether lacked (the table in the README's
// "codex-remote parity"): exec logs --full / --format text, machine add/remove, exec doctor,
// machine ls / --json, exec watch --poll/--tail and its artifacts, exec result's env, machine
// check's daemon_port/daemon_addr and "daemon not healthy", sync's echo of the request.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, closedPort, type CliEnv } from './support.js';

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

describe('exec doctor', () => {
  it('checks the daemon and each tool on the machine; exits 1 with a hint per failed check', async () => {
    const doctor = await cli.run(['exec', 'doctor', '--tool', 'sh', '--tool', 'no-such-tool-tether-test']);
    expect(doctor.code).toBe(1);
    expect(doctor.json()).toEqual({
      machine: 'local',
      overall_ok: false,
      checks: [
        { name: 'daemon_health', ok: true },
        { name: 'sh', ok: true },
        { name: 'no-such-tool-tether-test', ok: false, detail: 'no-such-tool-tether-test not found' },
      ],
      hints: [expect.stringMatching(/^install no-such-tool-tether-test on local/)],
    });
    const fine = await cli.run(['exec', 'doctor', '--json', '--tool', 'sh']);
    expect([fine.code, fine.json()['overall_ok']]).toEqual([0, true]);
    const bad = await cli.run(['exec', 'doctor', '--tool', 'sh;rm']);
    expect([bad.code, bad.stdout, bad.error().code]).toEqual([2, '', 'INVALID_ARGUMENT']);
  });

  it('a machine whose daemon does not answer: daemon_health fails, the tools are not checked, machine up is the hint', async () => {
    const port = await closedPort();
    cli.writeConfig(`machines:\n  - { name: dead, addr: "ws://127.0.0.1:${port}", token: "${'d'.repeat(32)}" }\n`);
    const doctor = await cli.run(['exec', 'doctor', '--machine', 'dead', '--tool', 'sh', '--timeout', '3s']);
    expect(doctor.code).toBe(1);
    const report = doctor.json();
    expect(report['checks'][0]).toEqual({ name: 'daemon_health', ok: false, detail: expect.stringMatching(/^connection refused/) });
    expect(report['checks'][1]).toEqual({ name: 'sh', ok: false, detail: 'not checked: the daemon did not answer' });
    expect(report['hints']).toHaveLength(1);
    const unknown = await cli.run(['exec', 'doctor', '--machine', 'nope']);
    expect([unknown.code, unknown.error().code]).toEqual([4, 'UNKNOWN_MACHINE']);
  });
});

describe('machine check and list, as codex-remote reports them', () => {
  it('names the daemon port and address; a daemon that does not answer says a triage phrase; machine ls and --json', async () => {
    const port = await closedPort();
    cli.writeConfig(`machines:\n  - { name: dead, addr: "ws://127.0.0.1:${port}", token: "${'d'.repeat(32)}" }\n`);
    const dead = await cli.run(['machine', 'check', '--machine', 'dead', '--timeout', '3s']);
    expect(dead.code).toBe(0);
    expect(dead.json()).toMatchObject({ name: 'dead', daemon_ok: false, daemon_port: port, daemon_addr: `ws://127.0.0.1:${port}`, error: expect.stringMatching(/^connection refused/) });
    const local = (await cli.run(['machine', 'check'])).json();
    expect([local['daemon_ok'], 'daemon_port' in local]).toEqual([true, false]); // a socket, no port
    const ls = await cli.run(['machine', 'ls', '--json', '--timeout', '3s']);
    expect(ls.code).toBe(0);
    expect(ls.json()).toMatchObject({ total: 2, daemon_ok: 1, failed: 1, machines: [{ name: 'local' }, { name: 'dead', daemon_port: port }] });
    const both = await cli.run(['machine', 'list', '--json', '--format', 'table']);
    expect([both.code, both.stdout]).toEqual([2, '']);
  });
});

describe('exec watch, exec result and sync fields', () => {
  it('watch takes --poll and --tail and puts the artifacts in its summary; result shows the env given', async () => {
    cli.writeConfig('machines: []\n');
    const dir = join(cli.home, 'job');
    mkdirSync(dir, { recursive: true });
    const cmd = 'mkdir -p .codex; echo \'{"model":"out/m.pt"}\' > .codex/artifacts.json; echo "done $FOO"';
    const id = (await cli.run(['exec', 'start', '--cwd', dir, '--env', 'FOO=bar', '--cmd', cmd])).json()['exec_id'];
    const watch = await cli.run(['exec', 'watch', '--id', id, '--full', '--poll', '1s', '--tail', '2000']);
    expect(watch.code, watch.stderr).toBe(0);
    const lines = watch.lines();
    expect(lines.filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['done bar']);
    expect(lines.at(-1)).toMatchObject({ type: 'summary', exec_id: id, exit_code: 0, artifacts: { model: 'out/m.pt' } });
    expect((await cli.run(['exec', 'result', '--id', id])).json()).toMatchObject({ env: { FOO: 'bar' }, artifacts: { model: 'out/m.pt' } });
    const badPoll = await cli.run(['exec', 'watch', '--id', id, '--poll', 'soon']);
    expect([badPoll.code, badPoll.error().code]).toEqual([2, 'INVALID_ARGUMENT']);
  });

  it('sync echoes the request as codex-remote does: mode, machine, src, dst, delete, exclude', async () => {
    const src = join(cli.home, 'sync-src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'a\n');
    writeFileSync(join(src, 'skip.log'), 'no\n');
    const push = await cli.run(['sync', 'push', '--src', `${src}/`, '--dst', join(cli.home, 'sync-dst'), '--exclude', '*.log']);
    expect(push.code, push.stderr).toBe(0);
    expect(push.json()).toMatchObject({ ok: true, mode: 'push', machine: 'local', src: `${src}/`, dst: join(cli.home, 'sync-dst'), delete: false, exclude: ['*.log'], files: 1 });
  });
});
