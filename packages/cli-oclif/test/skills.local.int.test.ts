// What the codex-remote skills read and rely on, checked on `local` and on a ws daemon: check as
// a report, sync's rsync rule and its safety, scripts run by their #!, logs returned whole,
// codex-remote's config, /tmp as a root, the JSON fields and exit codes.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import { BIN, cliEnv, type CliEnv } from './support.js';

let cli: CliEnv;
let daemon: Daemon;
/** A private temp dir (mode 0700), the local daemon's TMPDIR. */
let privateTmp: string;

const logLines = (lines: Array<Record<string, any>>) => lines.filter((l) => l['type'] === 'log').map((l) => l['line'] as string);

beforeAll(async () => {
  cli = cliEnv('tether-cli-skills-local-');
  privateTmp = join(cli.root, 'tmp');
  mkdirSync(privateTmp, { mode: 0o700 });
  // The local daemon starts with the environment of the first call.
  cli.env['TMPDIR'] = privateTmp;
  delete cli.env['PYTHONUNBUFFERED'];
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(cli.root, 'box-daemon'), plugins: [processPlugin, { plugin: filesystemPlugin, config: { roots: [cli.root] } }] });
});
afterAll(async () => {
  await daemon?.close();
  await cli?.cleanup();
});

describe('machine check is a report', () => {
  it('a machine that does not answer: exit 0, daemon_ok false, its error and hint; an unknown machine or a bad config: non-zero', async () => {
    cli.writeConfig(`machines:\n  - { name: gone, addr: 'ws://127.0.0.1:1', token: ${'f'.repeat(32)} }\n`);
    const check = await cli.run(['machine', 'check', '--machine', 'gone']);
    expect([check.code, check.stderr]).toEqual([0, '']);
    expect(check.json()).toMatchObject({ name: 'gone', transport: 'ws', daemon_ok: false, error: expect.stringMatching(/connection refused/), hint: expect.any(String) });

    const unknown = await cli.run(['machine', 'check', '--machine', 'nope']);
    expect([unknown.code, unknown.stdout]).toEqual([4, '']);
    expect(unknown.error().code).toBe('UNKNOWN_MACHINE');
    const usage = await cli.run(['machine', 'check', '--timeout', 'soon']);
    expect([usage.code, usage.stdout]).toEqual([2, '']);

    cli.writeConfig('machines:\n  - { name: bad, daemon_port: 7337 }\n');
    const config = await cli.run(['machine', 'check', '--machine', 'bad']);
    expect([config.code, config.stdout]).toEqual([3, '']);
    rmSync(cli.configFile);
  });
});

describe('exec: the fields and exit codes skills read', () => {
  it('exec run: the finished line says "exit status N" as codex-remote does; nothing on success', async () => {
    const failed = await cli.run(['exec', 'run', '--cmd', 'exit 3']);
    expect(failed.code).toBe(3);
    expect(failed.lines().at(-1)).toMatchObject({ type: 'finished', exit_code: 3, error: 'exit status 3' });
    const ok = await cli.run(['exec', 'run', '--cmd', 'true']);
    expect(ok.lines().at(-1)).not.toHaveProperty('error');
  });

  it('--script runs the file by its path: a python and a bash script, by their #! lines', async () => {
    const py = join(cli.root, 'job.py');
    writeFileSync(py, '#!/usr/bin/env python3\nimport sys\nprint("python", sys.version_info[0])\n');
    const sh = join(cli.root, 'job.sh');
    writeFileSync(sh, '#!/bin/bash\nwords=(a b c)\necho "bash array ${#words[@]}"\nexit 5\n');
    const python = await cli.run(['exec', 'run', '--script', py]);
    expect([python.code, logLines(python.lines())], python.stderr).toEqual([0, ['python 3']]);
    const bash = await cli.run(['exec', 'run', '--script', sh]);
    expect([bash.code, logLines(bash.lines())]).toEqual([5, ['bash array 3']]);
  });

  it('--script on a machine whose roots leave out the upload dir: PATH_OUTSIDE_ROOT with what to do', async () => {
    // The ws daemon serves files under cli.root only; its home (this process's) is elsewhere.
    cli.writeConfig(`machines:\n  - { name: box, addr: '${daemon.url}', token_file: '${daemon.tokenFile}' }\n`);
    const script = join(cli.root, 'job.sh');
    writeFileSync(script, '#!/bin/sh\necho hi\n');
    const run = await cli.run(['exec', 'run', '--machine', 'box', '--script', script]);
    expect([run.code, run.stdout]).toEqual([9, '']);
    expect(run.error()).toMatchObject({ code: 'PATH_OUTSIDE_ROOT', hint: expect.stringMatching(/tether file write --src .*--cmd/) });
    rmSync(cli.configFile);
  });

  it('exec watch with no cursor starts at the current end; --full replays', async () => {
    const id = (await cli.run(['exec', 'run', '--cmd', 'echo one; echo two'])).lines()[0]!['exec_id'] as string;
    const now = await cli.run(['exec', 'watch', '--id', id]);
    expect(now.code).toBe(0);
    expect(now.lines().map((l) => l['type'])).toEqual(['summary']);
    const full = await cli.run(['exec', 'watch', '--id', id, '--full']);
    expect(logLines(full.lines())).toEqual(['one', 'two']);
  });

  it('exec run of an execution whose daemon stops under it: the error on stderr, exit 255', async () => {
    const child = spawn(process.execPath, [BIN, 'exec', 'run', '--cmd', 'echo up; sleep 60'], { cwd: cli.home, env: cli.env });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (stdout.includes('"line":"up"')) resolve();
      });
    });
    expect((await cli.run(['daemon', 'stop'])).json()).toMatchObject({ ok: true, stopped: true });
    expect(await exited).toBe(255);
    const error = JSON.parse(stderr.trim().split('\n').at(-1)!).error;
    expect(error).toMatchObject({ code: 'CONNECTION_LOST', message: expect.stringMatching(/may still be running/), hint: expect.stringMatching(/exec watch --id \S+ --after-seq [1-9]\d* goes on .* exec result --id/) });
    // It does: the next daemon re-attaches, and the watch from that cursor goes on with nothing repeated.
    const id = JSON.parse(stdout.split('\n')[0]!).exec_id as string;
    const afterSeq = /--after-seq (\d+)/.exec(error.hint)![1]!;
    expect((await cli.run(['exec', 'result', '--id', id])).json()).toMatchObject({ status: 'running' });
    await cli.run(['exec', 'cancel', '--id', id]);
    const rest = await cli.run(['exec', 'watch', '--id', id, '--after-seq', afterSeq]);
    expect(logLines(rest.lines())).toEqual([]);
    expect(rest.lines().at(-1)).toMatchObject({ type: 'summary', end_reason: 'cancelled' });
  });
});

describe('exec logs returns what was asked', () => {
  let id: string;
  beforeAll(async () => {
    const run = await cli.run(['exec', 'run', '--cmd', 'seq 1 30000; printf "abcdefghij\\nklmnop\\nqrstuv"']);
    id = run.lines()[0]!['exec_id'] as string;
  });

  it('--tail-lines beyond 10000 gives them all, the last line included', async () => {
    const lines = logLines((await cli.run(['exec', 'logs', '--id', id, '--tail-lines', '25000'])).lines());
    expect(lines).toHaveLength(25000);
    expect(lines[0]).toBe('5004');
    expect(lines.at(-1)).toBe('qrstuv');
  });

  it('--since streams the whole range, newest lines included', async () => {
    const lines = logLines((await cli.run(['exec', 'logs', '--id', id, '--since', '1h'])).lines());
    expect(lines).toHaveLength(30003);
    expect([lines[0], lines.at(-1)]).toEqual(['1', 'qrstuv']);
    const newest = logLines((await cli.run(['exec', 'logs', '--id', id, '--since', '1h', '--tail-lines', '2'])).lines());
    expect(newest).toEqual(['klmnop', 'qrstuv']);
  });

  it('--tail BYTES drops the line the boundary cuts, keeps a whole one', async () => {
    const tail = async (bytes: number) => logLines((await cli.run(['exec', 'logs', '--id', id, '--tail', String(bytes)])).lines());
    expect(await tail(10)).toEqual(['qrstuv']); // "nop\nqrstuv": "nop" is cut
    expect(await tail(13)).toEqual(['klmnop', 'qrstuv']); // starts exactly at a line
    expect(await tail(14)).toEqual(['klmnop', 'qrstuv']); // "\nklmnop…": the cut piece is empty
  });
});

describe('sync follows rsync and deletes nothing unrelated', () => {
  let src: string;
  beforeAll(() => {
    src = join(cli.root, 'proj');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'a');
    writeFileSync(join(src, 'sub', 'b.txt'), 'b');
    symlinkSync('a.txt', join(src, 'link'));
    symlinkSync('../a.txt', join(src, 'sub', 'up'));
    symlinkSync('/etc/passwd', join(src, 'abs'));
    symlinkSync('../../elsewhere', join(src, 'out'));
  });
  const parent = () => join(cli.home, 'parent');
  const fresh = () => {
    rmSync(parent(), { recursive: true, force: true });
    mkdirSync(parent());
    writeFileSync(join(parent(), 'mine1'), '1');
    writeFileSync(join(parent(), 'mine2'), '2');
  };

  it('--src DIR copies the directory itself into --dst: --delete stays inside it', async () => {
    fresh();
    const push = await cli.run(['sync', 'push', '--src', src, '--dst', parent(), '--delete']);
    expect(push.code, push.stderr).toBe(0);
    expect(push.json()).toMatchObject({ ok: true, files: 2, deleted: 0, links: 2 });
    expect(readFileSync(join(parent(), 'mine1'), 'utf8')).toBe('1');
    expect(readFileSync(join(parent(), 'proj', 'sub', 'b.txt'), 'utf8')).toBe('b');
  });

  it('symlinks inside the tree are copied as symlinks; ones leading out are skipped and reported', async () => {
    expect(lstatSync(join(parent(), 'proj', 'link')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(parent(), 'proj', 'link'))).toBe('a.txt');
    expect(readlinkSync(join(parent(), 'proj', 'sub', 'up'))).toBe('../a.txt');
    expect(existsSync(join(parent(), 'proj', 'abs')) || existsSync(join(parent(), 'proj', 'out'))).toBe(false);
    const again = (await cli.run(['sync', 'push', '--src', src, '--dst', parent()])).json();
    expect(again).toMatchObject({ ok: true, files: 0, links: 0 });
    expect(again['skipped'].map((s: { path: string; reason: string }) => [s.path, s.reason])).toEqual([
      ['abs', 'symlink'],
      ['out', 'symlink'],
    ]);
  });

  it('--src DIR/ into an unrelated directory with --delete is refused, nothing removed; --dry-run lists what would go', async () => {
    fresh();
    const refused = await cli.run(['sync', 'push', '--src', `${src}/`, '--dst', parent(), '--delete']);
    expect([refused.code, refused.stdout]).toEqual([2, '']);
    expect(refused.error()).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/not a mirror/), hint: expect.stringMatching(/--dry-run/) });
    expect(readFileSync(join(parent(), 'mine2'), 'utf8')).toBe('2');

    const dry = await cli.run(['sync', 'push', '--src', `${src}/`, '--dst', parent(), '--delete', '--force-delete', '--dry-run']);
    expect(dry.json()).toMatchObject({ dry_run: true, would_copy: ['a.txt', 'sub/b.txt'], would_delete: ['mine1', 'mine2'], would_link: ['link', 'sub/up'], deleted: 2 });
    expect(readFileSync(join(parent(), 'mine1'), 'utf8')).toBe('1');
    expect(existsSync(join(parent(), 'a.txt'))).toBe(false);

    const forced = await cli.run(['sync', 'push', '--src', `${src}/`, '--dst', parent(), '--delete', '--force-delete']);
    expect(forced.json()).toMatchObject({ ok: true, files: 2, deleted: 2 });
    expect(existsSync(join(parent(), 'mine1'))).toBe(false);
  });

  it('pull follows the same rule', async () => {
    const into = mkdtempSync(join(cli.root, 'pull-'));
    const pull = await cli.run(['sync', 'pull', '--src', join(parent(), 'sub'), '--dst', into]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(readFileSync(join(into, 'sub', 'b.txt'), 'utf8')).toBe('b');
    // Synced alone, sub's link to ../a.txt would lead out of the copy: skipped.
    expect(existsSync(join(into, 'sub', 'up'))).toBe(false);
    expect(pull.json()['skipped']).toEqual([expect.objectContaining({ path: 'up', reason: 'symlink' })]);
  });
});

describe('codex-remote config and roots', () => {
  it("codex-remote's config is read when tether has none: addr http:// reaches the daemon's WebSocket", async () => {
    const legacy = join(cli.home, '.config', 'codex-remote');
    mkdirSync(legacy, { recursive: true });
    const token = readFileSync(daemon.tokenFile, 'utf8').trim();
    writeFileSync(
      join(legacy, 'config.yaml'),
      `machines:\n  - name: gpu1\n    addr: ${daemon.url.replace('ws://', 'http://')}\n    token: ${token}\n  - name: notoken\n    addr: http://127.0.0.1:7337\n  - name: weird\n    addr: ftp://127.0.0.1:7337\n    token: ${token}\n`,
    );
    expect(existsSync(cli.configFile)).toBe(false);
    const run = await cli.run(['exec', 'run', '--machine', 'gpu1', '--cmd', 'echo via http addr']);
    expect([run.code, logLines(run.lines())], run.stderr).toEqual([0, ['via http addr']]);

    const noToken = await cli.run(['exec', 'run', '--machine', 'notoken', '--cmd', 'true']);
    expect(noToken.code).toBe(3);
    expect(noToken.error()).toMatchObject({ code: 'CONFIG_INVALID', hint: expect.stringMatching(/token_file: ~\/\.config\/tether\/notoken\.token/) });
    expect(noToken.error().hint).not.toMatch(/check the flags/);
    const weird = await cli.run(['exec', 'run', '--machine', 'weird', '--cmd', 'true']);
    expect(weird.code).toBe(3);
    expect(weird.error()).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/unsupported scheme ftp:/), hint: expect.stringMatching(/fix machine weird/) });
    rmSync(legacy, { recursive: true });
  });

  it("machine import writes tether's config from codex-remote's, without a daemon_cmd that starts codexd", async () => {
    const from = join(cli.root, 'codex-remote.yaml');
    writeFileSync(
      from,
      `machines:\n  - name: gpu1\n    ssh: alice@gpu1.example\n    daemon_port: 7337\n    daemon_cmd: "nohup codexd serve --config ~/.codexd/config.yaml >/tmp/codexd.log 2>&1 &"\n  - name: box\n    addr: http://10.0.0.5:7337\n    token: ${'t'.repeat(20)}\n`,
    );
    const imported = await cli.run(['machine', 'import', '--from', from]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.json()).toMatchObject({ ok: true, path: cli.configFile, machines: ['gpu1', 'box'], dropped: [{ machine: 'gpu1', field: 'daemon_cmd' }] });
    const written = readFileSync(cli.configFile, 'utf8');
    expect(written).toMatch(/name: gpu1/);
    expect(written).not.toMatch(/codexd serve/);
    expect(statSync(cli.configFile).mode & 0o777).toBe(0o600);
    const again = await cli.run(['machine', 'import', '--from', from]);
    expect([again.code, again.stdout]).toEqual([9, '']);
    expect(again.error()).toMatchObject({ code: 'PATH_EXISTS', hint: expect.stringMatching(/--force/) });
    rmSync(cli.configFile);
  });

  it('the temp dirs as roots: a private TMPDIR is one; /tmp is one where the kernel protects shared dirs, else "path not allowed" says why', async () => {
    const mine = await cli.run(['file', 'write', '--dst', join(privateTmp, 'x.txt'), '--content', 'hi']);
    expect(mine.code, mine.stderr).toBe(0);
    expect(readFileSync(join(privateTmp, 'x.txt'), 'utf8')).toBe('hi');

    const sysctl = (name: string) => Number(existsSync(`/proc/sys/fs/${name}`) ? readFileSync(`/proc/sys/fs/${name}`, 'utf8').trim() : 0);
    const mode = statSync('/tmp').mode;
    const included = (mode & 0o002) === 0 || ((mode & 0o1000) !== 0 && sysctl('protected_symlinks') >= 1 && sysctl('protected_regular') >= 1);
    const shared = join(mkdtempSync('/tmp/tether-skills-'), 'y.txt');
    try {
      const write = await cli.run(['file', 'write', '--dst', shared, '--content', 'hi']);
      if (included) {
        expect(write.code, write.stderr).toBe(0);
      } else {
        expect(write.code).toBe(9);
        expect(write.error()).toMatchObject({ code: 'PATH_OUTSIDE_ROOT', message: expect.stringMatching(/^path not allowed/), hint: expect.stringMatching(/\/tmp is not one of the daemon's roots: .*protected_symlinks/) });
      }
    } finally {
      rmSync(join(shared, '..'), { recursive: true, force: true });
    }
  });
});
