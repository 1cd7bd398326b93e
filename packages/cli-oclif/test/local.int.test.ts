// The `local` machine: a daemon started on demand on a Unix socket in the state directory, left
// running between calls. Every command of the contract against it, field by field.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RFC3339, alive, cliEnv, eventually, type CliEnv } from './support.js';

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv();
});
afterAll(async () => {
  await cli.cleanup();
});

/** Pids of `daemon serve` processes whose data dir is `dir` (Linux /proc). */
function daemonPids(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes('serve') && argv.includes(dir)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

describe('the local daemon', () => {
  it('is started on demand by two racing calls, and only once', async () => {
    const [a, b] = await Promise.all([cli.run(['exec', 'run', '--cmd', 'echo a']), cli.run(['exec', 'run', '--cmd', 'echo b'])]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.lines().find((l) => l['type'] === 'log')?.['line']).toBe('a');
    expect(b.lines().find((l) => l['type'] === 'log')?.['line']).toBe('b');
    // The loser of the race exits by itself (it cannot take the store's lock).
    await eventually(() => (daemonPids(cli.stateDir).length === 1 ? true : undefined), 15_000, 'one daemon left');
    expect((statSync(join(cli.stateDir, 'daemon.sock')).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(join(cli.stateDir, 'token')).mode & 0o777).toString(8)).toBe('600');
    expect(Number(readFileSync(join(cli.stateDir, 'daemon.pid'), 'utf8'))).toBe(daemonPids(cli.stateDir)[0]);
  });

  it('machine check: the Status of local', async () => {
    const result = await cli.run(['machine', 'check']);
    expect(result.code).toBe(0);
    const status = result.json();
    expect(status).toEqual({
      name: 'local',
      transport: 'local',
      ssh_ok: null,
      daemon_ok: true,
      latency_ms: expect.any(Number),
      checked_at: expect.stringMatching(RFC3339),
      daemon_version: '0.1.0',
    });
  });

  it('machine list: counts and the local Status, also as a table', async () => {
    const list = (await cli.run(['machine', 'list'])).json();
    expect(list).toEqual({
      total: 1,
      ssh_ok: 0,
      daemon_ok: 1,
      failed: 0,
      checked_at: expect.stringMatching(RFC3339),
      machines: [expect.objectContaining({ name: 'local', daemon_ok: true, ssh_ok: null })],
    });
    const table = await cli.run(['machine', 'list', '--format', 'table']);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+TRANSPORT\s+SSH\s+DAEMON/);
    expect(table.stdout).toMatch(/\nlocal\s+local\s+-\s+ok/);
  });

  it('daemon status, stop, and a new daemon on the next call that still knows earlier executions', async () => {
    const before = (await cli.run(['daemon', 'status'])).json();
    expect(before).toEqual({
      running: true,
      ok: true,
      pid: expect.any(Number),
      version: '0.1.0',
      uptime_ms: expect.any(Number),
      active: expect.any(Number),
      store: { ok: true },
      data_dir: cli.stateDir,
      socket: join(cli.stateDir, 'daemon.sock'),
      log: join(cli.stateDir, 'daemon.log'),
    });
    const earlier = (await cli.run(['exec', 'start', '--cmd', 'echo kept'])).json()['exec_id'] as string;
    await eventually(async () => ((await cli.run(['exec', 'result', '--id', earlier])).json()['status'] === 'finished' ? true : undefined));

    const stop = await cli.run(['daemon', 'stop']);
    expect(stop.json()).toEqual({ ok: true, stopped: true, pid: before['pid'], cancel_running: false });
    expect(daemonPids(cli.stateDir)).toEqual([]);
    expect((await cli.run(['daemon', 'status'])).json()).toMatchObject({ running: false });
    expect((await cli.run(['daemon', 'stop'])).json()).toEqual({ ok: true, stopped: false, reason: 'not running' });

    const again = await cli.run(['exec', 'result', '--id', earlier]);
    expect(again.json()).toMatchObject({ exec_id: earlier, status: 'finished', exit_code: 0, stdout_bytes: 5 });
    expect((await cli.run(['daemon', 'status'])).json()['pid']).not.toBe(before['pid']);
  });

  it('daemon stop leaves a running command running and the next daemon records its real end; --cancel-running cancels it', async () => {
    const gate = join(cli.home, 'go-after-stop');
    const kept = (await cli.run(['exec', 'start', '--cmd', `echo one; while [ ! -e ${gate} ]; do sleep 0.05; done; echo two; exit 4`])).json()['exec_id'] as string;
    await eventually(async () => ((await cli.run(['exec', 'logs', '--id', kept, '--full'])).lines().length > 0 ? true : undefined));
    const pid = (await cli.run(['exec', 'result', '--id', kept])).json()['pid'] as number;
    expect((await cli.run(['daemon', 'stop'])).json()).toMatchObject({ stopped: true, cancel_running: false });
    expect(daemonPids(cli.stateDir)).toEqual([]);
    expect(alive(pid)).toBe(true);
    writeFileSync(gate, '');
    const watched = await cli.run(['exec', 'watch', '--id', kept, '--full']);
    expect(watched.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['one', 'two']);
    expect(watched.lines().at(-1)).toMatchObject({ type: 'summary', end_reason: 'exited', exit_code: 4 });

    const doomed = (await cli.run(['exec', 'start', '--cmd', 'echo up; sleep 300'])).json()['exec_id'] as string;
    await eventually(async () => ((await cli.run(['exec', 'logs', '--id', doomed, '--full'])).lines().length > 0 ? true : undefined));
    const doomedPid = (await cli.run(['exec', 'result', '--id', doomed])).json()['pid'] as number;
    expect((await cli.run(['daemon', 'stop', '--cancel-running'])).json()).toMatchObject({ stopped: true, cancel_running: true });
    expect(alive(doomedPid)).toBe(false);
    expect((await cli.run(['exec', 'result', '--id', doomed])).json()).toMatchObject({ status: 'finished', end_reason: 'cancelled' });
  });
});

describe('exec', () => {
  it('run: started, a log line per line of each stream, finished; exits with the command\'s code', async () => {
    const result = await cli.run(['exec', 'run', '--cmd', 'echo one; echo two >&2; printf "three\\nfour"; exit 3']);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe('');
    const lines = result.lines();
    expect(lines[0]).toEqual({ type: 'started', exec_id: expect.any(String), status: 'running', started_at: expect.stringMatching(RFC3339) });
    const logs = lines.filter((l) => l['type'] === 'log');
    for (const log of logs) expect(Object.keys(log).sort()).toEqual(['line', 'seq', 'stream', 'type']);
    expect(logs.map((l) => [l['stream'], l['line']])).toEqual(
      expect.arrayContaining([
        ['stdout', 'one'],
        ['stderr', 'two'],
        ['stdout', 'three'],
        ['stdout', 'four'],
      ]),
    );
    expect(logs.map((l) => l['line']).filter((l) => l !== 'two')).toEqual(['one', 'three', 'four']);
    expect(lines.at(-1)).toEqual({
      type: 'finished',
      exec_id: lines[0]!['exec_id'],
      status: 'finished',
      end_reason: 'exited',
      exit_code: 3,
      finished_at: expect.stringMatching(RFC3339),
      duration_ms: expect.any(Number),
      error: 'exit status 3',
    });
  });

  it('run: in the current directory by default, with --cwd, --env and --shell', async () => {
    const here = (await cli.run(['exec', 'run', '--cmd', 'pwd'], { cwd: cli.root })).lines();
    expect(here.find((l) => l['type'] === 'log')?.['line']).toBe(cli.root);
    const result = await cli.run(['exec', 'run', '--cwd', cli.home, '--env', 'GREETING=hi there', '--shell', 'bash', '--cmd', 'echo "$GREETING from $PWD in ${BASH_VERSION%%.*}"']);
    expect(result.lines().find((l) => l['type'] === 'log')?.['line']).toMatch(new RegExp(`^hi there from ${cli.home} in \\d+$`));
  });

  it('run: a time limit ends it as timed_out with exit code 124; a bad cwd fails to start with 127', async () => {
    const timed = await cli.run(['exec', 'run', '--timeout', '300ms', '--cmd', 'sleep 30']);
    expect(timed.code).toBe(124);
    expect(timed.lines().at(-1)).toMatchObject({ type: 'finished', end_reason: 'timed_out', exit_code: null });

    const bad = await cli.run(['exec', 'run', '--cwd', join(cli.root, 'missing'), '--cmd', 'true']);
    expect(bad.code).toBe(127);
    // The error alone: nothing on stdout (the execution is recorded: exec result finds it by the id in the message).
    expect(bad.stdout).toBe('');
    expect(bad.error()).toMatchObject({ message: expect.stringMatching(/failed to start/), hint: expect.any(String) });
    const id = /^(\S+) failed to start/.exec(bad.error().message)![1]!;
    expect((await cli.run(['exec', 'result', '--id', id])).json()).toMatchObject({ status: 'finished', end_reason: 'failed_to_start' });
  });

  it('start returns while the command runs; result from another process finds it; the daemon outlives the CLI', async () => {
    const start = await cli.run(['exec', 'start', '--cmd', `echo started; while [ ! -e ${join(cli.root, 'go')} ]; do sleep 0.05; done; echo done`]);
    expect(start.code).toBe(0);
    const started = start.json();
    expect(started).toEqual({ exec_id: expect.any(String), machine: 'local', status: 'running' });
    const id = started['exec_id'] as string;

    // The CLI that started it has exited; the command still runs, waiting for us.
    const running = (await cli.run(['exec', 'result', '--id', id])).json();
    expect(running).toEqual({
      exec_id: id,
      machine: 'local',
      status: 'running',
      pid: expect.any(Number),
      cmd: expect.stringContaining('echo started'),
      cwd: cli.home,
      started_at: expect.stringMatching(RFC3339),
      duration_ms: expect.any(Number),
      stdout_bytes: expect.any(Number),
      stderr_bytes: 0,
      last_seq: expect.any(Number),
    });

    writeFileSync(join(cli.root, 'go'), '');
    const finished = await eventually(async () => {
      const r = (await cli.run(['exec', 'result', '--id', id])).json();
      return r['status'] === 'finished' ? r : undefined;
    });
    expect(finished).toEqual({
      exec_id: id,
      machine: 'local',
      status: 'finished',
      end_reason: 'exited',
      exit_code: 0,
      pid: running['pid'],
      cmd: running['cmd'],
      cwd: cli.home,
      started_at: running['started_at'],
      finished_at: expect.stringMatching(RFC3339),
      duration_ms: expect.any(Number),
      stdout_bytes: 'started\ndone\n'.length,
      stderr_bytes: 0,
      last_seq: expect.any(Number),
    });
    expect(Date.parse(finished['finished_at'])).toBeGreaterThanOrEqual(Date.parse(finished['started_at']));
  });

  it('start --id is idempotent: a retry returns the same execution, no second process', async () => {
    const key = `retry-${Date.now()}`;
    const marker = join(cli.root, `${key}.count`);
    const args = ['exec', 'start', '--id', key, '--cmd', `echo x >> ${marker}`];
    const [first, second] = [(await cli.run(args)).json(), (await cli.run(args)).json()];
    expect(first['exec_id']).toBe(key);
    expect(second['exec_id']).toBe(key);
    await eventually(async () => ((await cli.run(['exec', 'result', '--id', key])).json()['status'] === 'finished' ? true : undefined));
    expect(readFileSync(marker, 'utf8')).toBe('x\n');
  });

  it('logs: by default the last 2000 bytes of stdout; stderr, line tails, seq and time windows', async () => {
    // 3000 bytes of stdout in 100 lines of 30 bytes, then 3 lines of stderr.
    const cmd = 'i=0; while [ $i -lt 100 ]; do printf "stdout line %017d\\n" $i; i=$((i+1)); done; echo e1 >&2; echo e2 >&2; echo e3 >&2';
    const run = await cli.run(['exec', 'run', '--cmd', cmd]);
    const id = run.lines()[0]!['exec_id'] as string;

    const tail = (await cli.run(['exec', 'logs', '--id', id])).lines();
    const bytes = tail.reduce((n, l) => n + Buffer.byteLength(l['line']) + 1, 0);
    // The last 2000 bytes start 10 bytes into line 33: that cut line is dropped (as codex-remote does).
    expect(bytes).toBe(1980);
    expect(tail[0]!['line']).toBe(`stdout line ${'34'.padStart(17, '0')}`);
    expect(tail.every((l) => l['type'] === 'log' && l['stream'] === 'stdout' && typeof l['seq'] === 'number')).toBe(true);
    expect(tail.at(-1)!['line']).toBe(`stdout line ${'99'.padStart(17, '0')}`);

    expect((await cli.run(['exec', 'logs', '--id', id, '--stream', 'stderr', '--tail', '2000'])).lines().map((l) => l['line'])).toEqual(['e1', 'e2', 'e3']);
    expect((await cli.run(['exec', 'logs', '--id', id, '--stream', 'both', '--tail-lines', '2'])).lines().map((l) => l['line'])).toEqual(['e2', 'e3']);
    const all = (await cli.run(['exec', 'logs', '--id', id, '--stream', 'both', '--since', '1h'])).lines();
    expect(all).toHaveLength(103);
    const lastStdoutSeq = all.filter((l) => l['stream'] === 'stdout').at(-1)!['seq'] as number;
    expect((await cli.run(['exec', 'logs', '--id', id, '--stream', 'both', '--after-seq', String(lastStdoutSeq)])).lines().map((l) => l['line'])).toEqual([
      'e1',
      'e2',
      'e3',
    ]);
    expect((await cli.run(['exec', 'logs', '--id', id, '--stream', 'both', '--until', '2000-01-01T00:00:00Z', '--since', '1h'])).stdout).toBe('');
  });

  it('watch: from a durable cursor, nothing missed or repeated; --until-pattern; exits with the command\'s code', async () => {
    const start = await cli.run(['exec', 'start', '--cmd', `for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.05; done; echo oops >&2; exit 4`]);
    const id = start.json()['exec_id'] as string;

    const first = await cli.run(['exec', 'watch', '--id', id, '--full', '--max-events', '2']);
    expect(first.code).toBe(0);
    const firstLines = first.lines();
    const summary = firstLines.at(-1)!;
    expect(summary).toEqual({
      type: 'summary',
      exec_id: id,
      status: expect.stringMatching(/^(running|finished)$/),
      end_reason: summary['status'] === 'finished' ? 'exited' : null,
      exit_code: summary['status'] === 'finished' ? 4 : null,
      duration_ms: expect.any(Number),
      last_seq: expect.any(Number),
    });

    const rest = await cli.run(['exec', 'watch', '--id', id, '--after-seq', String(summary['last_seq'])]);
    expect(rest.code).toBe(4);
    const restLines = rest.lines();
    expect(restLines.at(-1)).toMatchObject({ type: 'summary', status: 'finished', end_reason: 'exited', exit_code: 4 });
    const seen = [...firstLines.slice(0, -1), ...restLines.slice(0, -1)].map((l) => l['line']);
    expect(seen).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'oops']);

    const until = await cli.run(['exec', 'watch', '--id', id, '--full', '--stream', 'stdout', '--until-pattern', 'line [3]']);
    expect(until.lines().map((l) => l['line'] ?? l['type'])).toEqual(['line 1', 'line 2', 'line 3', 'summary']);
  });

  it('cancel: the whole process group, then canceled:false once finished', async () => {
    const id = (await cli.run(['exec', 'start', '--cmd', 'sleep 60 & sleep 60; wait'])).json()['exec_id'] as string;
    const cancel = await cli.run(['exec', 'cancel', '--id', id, '--grace', '1s']);
    expect(cancel.json()).toEqual({ canceled: true, exec_id: id });
    expect((await cli.run(['exec', 'result', '--id', id])).json()).toMatchObject({ status: 'finished', end_reason: 'cancelled', exit_code: null });
    expect((await cli.run(['exec', 'cancel', '--id', id])).json()).toEqual({ canceled: false, reason: 'already finished', exec_id: id });
  });

  it('list: results newest first, by status, limited; a table for people', async () => {
    const id = (await cli.run(['exec', 'start', '--cmd', 'sleep 60'])).json()['exec_id'] as string;
    const running = (await cli.run(['exec', 'list', '--status', 'running'])).json();
    expect(running['execs'].map((e: { exec_id: string }) => e.exec_id)).toEqual([id]);
    expect(running['execs'][0]).toMatchObject({ exec_id: id, machine: 'local', status: 'running', cmd: 'sleep 60' });
    const two = (await cli.run(['exec', 'list', '--limit', '2'])).json();
    expect(two['execs']).toHaveLength(2);
    expect(two['execs'][0]['exec_id']).toBe(id);
    for (const e of two['execs']) expect(Object.keys(e)).toEqual(expect.arrayContaining(['exec_id', 'machine', 'status', 'pid', 'cmd', 'cwd', 'started_at', 'duration_ms', 'stdout_bytes', 'stderr_bytes', 'last_seq']));
    const table = await cli.run(['exec', 'list', '--format', 'table', '--limit', '1']);
    expect(table.stdout).toMatch(new RegExp(`^EXEC_ID\\s+STATUS.*\\n${id}\\s+running`));
    await cli.run(['exec', 'cancel', '--id', id]);
  });

  it('write to stdin (--data, a pipe, --eof) and signal', async () => {
    const id = (await cli.run(['exec', 'start', '--stdin', '--cmd', 'cat'])).json()['exec_id'] as string;
    expect((await cli.run(['exec', 'write', '--id', id, '--data', 'hello\n'])).json()).toEqual({ ok: true, bytes: 6 });
    expect((await cli.run(['exec', 'write', '--id', id, '--eof'], { input: 'from a pipe\n' })).json()).toEqual({ ok: true, bytes: 12 });
    const done = await cli.run(['exec', 'watch', '--id', id, '--full']);
    expect(done.code).toBe(0);
    expect(done.lines().map((l) => l['line'] ?? l['type'])).toEqual(['hello', 'from a pipe', 'summary']);

    const trap = (await cli.run(['exec', 'start', '--cmd', "trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.05; done"])).json()['exec_id'] as string;
    await cli.run(['exec', 'watch', '--id', trap, '--full', '--until-pattern', 'ready']);
    expect((await cli.run(['exec', 'signal', '--id', trap, '--signal', 'INT'])).json()).toEqual({ ok: true });
    const after = await cli.run(['exec', 'watch', '--id', trap, '--full']);
    expect(after.code).toBe(7);
    expect(after.lines().map((l) => l['line'] ?? l['type'])).toContain('got INT');
  });
});

describe('file', () => {
  it('write, stat, ls, read, mkdir and rm, relative to the current directory', async () => {
    const write = await cli.run(['file', 'write', '--dst', 'notes/a.txt', '--content', 'hello file', '--mkdir', '--mode', '0600']);
    expect(write.json()).toEqual({ ok: true, path: join(cli.home, 'notes/a.txt'), bytes_written: 10 });

    const stat = (await cli.run(['file', 'stat', '--path', 'notes/a.txt'])).json();
    expect(stat).toEqual({ ok: true, name: 'a.txt', path: join(cli.home, 'notes/a.txt'), type: 'file', size: 10, mode: '0600', mtime: expect.stringMatching(RFC3339) });

    const read = (await cli.run(['file', 'read', '--path', join(cli.home, 'notes/a.txt')])).json();
    expect(read).toEqual({ ok: true, path: join(cli.home, 'notes/a.txt'), size: 10, content: Buffer.from('hello file').toString('base64') });

    expect((await cli.run(['file', 'mkdir', '--path', 'notes/deep/er'])).json()).toEqual({ ok: true, path: join(cli.home, 'notes/deep/er') });
    const ls = (await cli.run(['file', 'ls', '--path', 'notes'])).json();
    expect(ls['path']).toBe(join(cli.home, 'notes'));
    expect(ls['entries'].map((e: { name: string; type: string }) => [e.name, e.type]).sort()).toEqual([
      ['a.txt', 'file'],
      ['deep', 'directory'],
    ]);

    const notEmpty = await cli.run(['file', 'rm', '--path', 'notes/deep']);
    expect(notEmpty.code).toBe(9);
    expect(notEmpty.error().code).toBe('DIRECTORY_NOT_EMPTY');
    expect((await cli.run(['file', 'rm', '--path', 'notes/deep', '--recursive'])).json()).toEqual({ ok: true, path: join(cli.home, 'notes/deep'), removed: true });
    expect((await cli.run(['file', 'rm', '--path', 'notes/deep', '--force'])).json()).toMatchObject({ ok: true, removed: false });
    const missing = await cli.run(['file', 'stat', '--path', 'notes/deep']);
    expect([missing.code, missing.error().code, missing.stdout]).toEqual([9, 'PATH_NOT_FOUND', '']);
  });

  it('uploads and downloads a file larger than one message, byte for byte', async () => {
    const big = Buffer.alloc(9 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    const src = join(cli.root, 'big.bin');
    writeFileSync(src, big);
    const up = await cli.run(['file', 'write', '--src', src, '--dst', 'big-copy.bin']);
    expect(up.json()).toEqual({ ok: true, path: join(cli.home, 'big-copy.bin'), bytes_written: big.length });
    const dst = join(cli.root, 'big-back.bin');
    const down = await cli.run(['file', 'read', '--path', 'big-copy.bin', '--dst', dst]);
    expect(down.json()).toEqual({ ok: true, path: join(cli.home, 'big-copy.bin'), size: big.length, dst });
    const hash = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(hash(readFileSync(dst))).toBe(hash(big));
  });
});

describe('an agent\'s chain', () => {
  it('check → start → poll result → stderr of the failure → cancel a long one', async () => {
    expect((await cli.run(['machine', 'check'])).json()['daemon_ok']).toBe(true);

    const id = (await cli.run(['exec', 'start', '--cmd', 'echo building; echo "error: missing semicolon" >&2; exit 2'])).json()['exec_id'] as string;
    const result = await eventually(async () => {
      const r = (await cli.run(['exec', 'result', '--id', id])).json();
      return r['status'] === 'finished' ? r : undefined;
    });
    expect(result).toMatchObject({ end_reason: 'exited', exit_code: 2, stdout_bytes: 9, stderr_bytes: 25 });
    const why = (await cli.run(['exec', 'logs', '--id', id, '--stream', 'stderr', '--tail', '2000'])).lines();
    expect(why).toEqual([{ type: 'log', stream: 'stderr', line: 'error: missing semicolon', seq: expect.any(Number) }]);

    const long = (await cli.run(['exec', 'start', '--cmd', 'sleep 600'])).json()['exec_id'] as string;
    expect((await cli.run(['exec', 'cancel', '--id', long])).json()).toEqual({ canceled: true, exec_id: long });
    expect((await cli.run(['exec', 'result', '--id', long])).json()).toMatchObject({ status: 'finished', end_reason: 'cancelled' });
  });
});

describe('gpu', () => {
  it('status without NVIDIA: available false with a reason, empty lists', async () => {
    const status = (await cli.run(['gpu', 'status'], { env: { PATH: '/usr/bin:/bin' } })).json();
    expect(status).toEqual({ available: false, reason: expect.any(String), gpus: [], processes: [], probed_at: expect.stringMatching(RFC3339) });
  });
});
