// A machine reached over the ws transport: a daemon on loopback TCP (started here, in-process),
// a config file with its `addr` and token. The contract's commands against it, and the failures
// agents triage: unauthorized, connection refused.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import { FakeNvidiaSmi } from './fakeNvidiaSmi.js';
import { RFC3339, cliEnv, closedPort, eventually, type CliEnv } from './support.js';

let cli: CliEnv;
let daemon: Daemon;
let gpu: FakeNvidiaSmi;
let files: string;

beforeAll(async () => {
  cli = cliEnv('tether-cli-ws-');
  files = join(cli.root, 'box-files');
  mkdirSync(files);
  gpu = new FakeNvidiaSmi(join(cli.root, 'fake-gpu'));
  daemon = await startDaemon({
    listen: '127.0.0.1:0',
    dataDir: join(cli.root, 'box-daemon'),
    plugins: [processPlugin, { plugin: filesystemPlugin, config: { roots: [files] } }, { plugin: gpuPlugin, config: { command: gpu.command, cacheMs: 0 } }],
  });
  cli.writeConfig(`# machines reached over WebSocket
machines:
  - name: box
    addr: ${daemon.url}
    token_file: ${daemon.tokenFile}
  - name: wrongtoken
    addr: ${daemon.url}
    token: ${'f'.repeat(64)}
  - name: closed
    transport: ws
    addr: 127.0.0.1:${await closedPort()}
    token: ${'f'.repeat(64)}
`);
});
afterAll(async () => {
  await daemon?.close();
  await cli?.cleanup();
});

describe('machines over ws', () => {
  it('machine check: a Status for ws (ssh_ok null)', async () => {
    const check = await cli.run(['machine', 'check', '--machine', 'box']);
    expect(check.code).toBe(0);
    expect(check.json()).toEqual({
      name: 'box',
      transport: 'ws',
      ssh_ok: null,
      daemon_ok: true,
      latency_ms: expect.any(Number),
      checked_at: expect.stringMatching(RFC3339),
      daemon_version: '0.1.0',
      daemon_port: Number(new URL(daemon.url).port),
      daemon_addr: daemon.url,
    });
  });

  it('machine check of a refused token: a report — the Status with its error and hint, exit 0, "unauthorized"', async () => {
    const check = await cli.run(['machine', 'check', '--machine', 'wrongtoken']);
    expect([check.code, check.stderr]).toEqual([0, '']);
    expect(check.json()).toEqual({
      name: 'wrongtoken',
      transport: 'ws',
      ssh_ok: null,
      daemon_ok: false,
      latency_ms: null,
      checked_at: expect.stringMatching(RFC3339),
      daemon_port: expect.any(Number),
      daemon_addr: expect.any(String),
      error: expect.stringMatching(/^unauthorized/),
      hint: expect.stringMatching(/token/),
    });
  });

  it('a machine nobody listens for: "connection refused", exit 6, nothing on stdout', async () => {
    const result = await cli.run(['exec', 'result', '--machine', 'closed', '--id', 'x1']);
    expect([result.code, result.stdout]).toEqual([6, '']);
    expect(result.error()).toMatchObject({ code: 'CONNECTION_LOST', message: expect.stringMatching(/connection refused/), hint: expect.stringMatching(/machine check --machine closed/) });
  });

  it('machine list: every machine, with counts', async () => {
    const list = (await cli.run(['machine', 'list', '--timeout', '5s'])).json();
    expect(list).toMatchObject({ total: 4, ssh_ok: 0, daemon_ok: 2, failed: 2, checked_at: expect.stringMatching(RFC3339) });
    expect(list['machines'].map((m: { name: string; daemon_ok: boolean }) => [m.name, m.daemon_ok])).toEqual([
      ['local', true],
      ['box', true],
      ['wrongtoken', false],
      ['closed', false],
    ]);
    expect(list['machines'][3].error).toMatch(/connection refused/);
  });
});

describe('exec on box', () => {
  it('run, result, logs, list: the same fields as on local', async () => {
    const run = await cli.run(['exec', 'run', '--machine', 'box', '--cmd', 'echo remote; echo warn >&2; exit 5']);
    expect(run.code).toBe(5);
    const [started, ...rest] = run.lines();
    expect(started).toEqual({ type: 'started', exec_id: expect.any(String), status: 'running', started_at: expect.stringMatching(RFC3339) });
    expect(rest.filter((l) => l['type'] === 'log').map((l) => [l['stream'], l['line']])).toEqual([
      ['stdout', 'remote'],
      ['stderr', 'warn'],
    ]);
    expect(rest.at(-1)).toMatchObject({ type: 'finished', end_reason: 'exited', exit_code: 5 });

    const id = started!['exec_id'] as string;
    expect((await cli.run(['exec', 'result', '--machine', 'box', '--id', id])).json()).toEqual({
      exec_id: id,
      machine: 'box',
      status: 'finished',
      end_reason: 'exited',
      exit_code: 5,
      pid: expect.any(Number),
      cmd: 'echo remote; echo warn >&2; exit 5',
      cwd: process.cwd(), // the daemon's (it runs in this test process)
      env: { PYTHONUNBUFFERED: '1' }, // what remote machines give every execution (codexd's default)
      started_at: started!['started_at'],
      finished_at: expect.stringMatching(RFC3339),
      duration_ms: expect.any(Number),
      stdout_bytes: 7,
      stderr_bytes: 5,
      last_seq: expect.any(Number),
    });
    expect((await cli.run(['exec', 'logs', '--machine', 'box', '--id', id, '--stream', 'stderr', '--tail', '2000'])).lines()).toEqual([
      { type: 'log', stream: 'stderr', line: 'warn', seq: expect.any(Number) },
    ]);
    expect((await cli.run(['exec', 'list', '--machine', 'box', '--limit', '1'])).json()['execs'][0]).toMatchObject({ exec_id: id, machine: 'box' });
  });

  it('start, watch, write, signal, cancel', async () => {
    const id = (await cli.run(['exec', 'start', '--machine', 'box', '--stdin', '--cmd', 'read line; echo "got $line"; sleep 60'])).json()['exec_id'] as string;
    expect((await cli.run(['exec', 'write', '--machine', 'box', '--id', id, '--data', 'ping\n'])).json()).toEqual({ ok: true, bytes: 5 });
    const watch = await cli.run(['exec', 'watch', '--machine', 'box', '--id', id, '--full', '--until-pattern', '^got']);
    expect(watch.lines().map((l) => l['line'] ?? l['type'])).toEqual(['got ping', 'summary']);
    expect(watch.lines()[1]).toMatchObject({ status: 'running', end_reason: null, exit_code: null });
    expect((await cli.run(['exec', 'signal', '--machine', 'box', '--id', id, '--signal', 'CONT'])).json()).toEqual({ ok: true });
    expect((await cli.run(['exec', 'cancel', '--machine', 'box', '--id', id, '--grace', '500ms'])).json()).toEqual({ canceled: true, exec_id: id });
  });

  it('an unknown id: "exec_id not found", exit 5', async () => {
    const result = await cli.run(['exec', 'logs', '--machine', 'box', '--id', 'no-such-exec']);
    expect([result.code, result.stdout]).toEqual([5, '']);
    expect(result.error()).toEqual({ code: 'EXEC_NOT_FOUND', message: 'exec_id not found: no-such-exec', hint: expect.stringMatching(/exec list --machine box/) });
  });

  it('a refused token on any command: "unauthorized", exit 7', async () => {
    const result = await cli.run(['exec', 'run', '--machine', 'wrongtoken', '--cmd', 'true']);
    expect([result.code, result.stdout, result.error().code]).toEqual([7, '', 'UNAUTHORIZED']);
  });
});

describe('files and GPUs on box', () => {
  it('file write, stat, read, ls, rm inside the daemon\'s roots', async () => {
    const path = join(files, 'in', 'x.txt');
    expect((await cli.run(['file', 'write', '--machine', 'box', '--dst', path, '--content', 'remote text', '--mkdir'])).json()).toEqual({ ok: true, path, bytes_written: 11 });
    expect((await cli.run(['file', 'stat', '--machine', 'box', '--path', path])).json()).toMatchObject({ ok: true, type: 'file', size: 11, mode: '0644' });
    expect(Buffer.from((await cli.run(['file', 'read', '--machine', 'box', '--path', path])).json()['content'], 'base64').toString()).toBe('remote text');
    expect((await cli.run(['file', 'ls', '--machine', 'box', '--path', join(files, 'in')])).json()['entries']).toEqual([
      { name: 'x.txt', path: join(files, 'in', 'x.txt'), type: 'file', size: 11, mode: '0644', mtime: expect.stringMatching(RFC3339) },
    ]);
    expect((await cli.run(['file', 'rm', '--machine', 'box', '--path', join(files, 'in'), '--recursive'])).json()).toMatchObject({ ok: true, removed: true });
    const outside = await cli.run(['file', 'read', '--machine', 'box', '--path', '/etc/hostname']);
    expect([outside.code, outside.error().code]).toEqual([9, 'PATH_OUTSIDE_ROOT']);
  });

  it('gpu status: the GPUs and their processes, snake_case', async () => {
    gpu.set({ busy: true });
    expect((await cli.run(['gpu', 'status', '--machine', 'box'])).json()).toEqual({
      available: true,
      gpus: [
        {
          index: 0,
          uuid: 'GPU-4b8e1d2c-6f3a-9c1e-2a7d-5e0f8b3c9a14',
          name: 'NVIDIA A100-SXM4-80GB',
          memory_used_mib: 70000,
          memory_total_mib: 81920,
          utilization_gpu: 90,
          temperature_c: 71,
        },
      ],
      processes: [{ pid: 4242, gpu_uuid: 'GPU-4b8e1d2c-6f3a-9c1e-2a7d-5e0f8b3c9a14', used_memory_mib: 69990 }],
      probed_at: expect.stringMatching(RFC3339),
    });
  });

  it('gpu wait: GATE_TIMEOUT while busy (exit 8), then the free GPUs', async () => {
    gpu.set({ busy: true });
    const busy = await cli.run(['gpu', 'wait', '--machine', 'box', '--free', '--timeout', '300ms', '--poll', '100ms']);
    expect([busy.code, busy.stdout, busy.error().code]).toEqual([8, '', 'GATE_TIMEOUT']);
    gpu.set({ busy: false });
    expect((await cli.run(['gpu', 'wait', '--machine', 'box', '--free', '--poll', '100ms'])).json()).toEqual({
      ok: true,
      waited_ms: expect.any(Number),
      gpus: [expect.objectContaining({ index: 0, utilization_gpu: 0 })],
    });
  });

  it('exec start --gpu-gate: queued while the GPU is busy, runs once it is free', async () => {
    gpu.set({ busy: true });
    const start = (await cli.run(['exec', 'start', '--machine', 'box', '--gpu-gate', '--cmd', 'echo trained'])).json();
    expect(start).toEqual({ exec_id: expect.any(String), machine: 'box', status: 'queued' });
    const queued = (await cli.run(['exec', 'result', '--machine', 'box', '--id', start['exec_id']])).json();
    expect(queued).toMatchObject({ status: 'queued', pid: null, started_at: null });
    expect(queued).not.toHaveProperty('end_reason');
    gpu.set({ busy: false });
    const done = await eventually(async () => {
      const r = (await cli.run(['exec', 'result', '--machine', 'box', '--id', start['exec_id']])).json();
      return r['status'] === 'finished' ? r : undefined;
    });
    expect(done).toMatchObject({ end_reason: 'exited', exit_code: 0, stdout_bytes: 8 });
  });
});
