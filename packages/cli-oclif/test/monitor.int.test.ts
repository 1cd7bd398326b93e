// exec watch as a monitor: only the lines an agent would act on (--on-pattern), a stall
// (--idle), and several executions at once (--all-running --until all), on the local daemon.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cliEnv, type CliEnv } from './support.js';

let cli: CliEnv;

beforeAll(() => {
  cli = cliEnv('tether-cli-monitor-');
});
afterAll(async () => {
  await cli?.cleanup();
});

async function start(args: string[]): Promise<string> {
  const started = await cli.run(['exec', 'start', ...args]);
  expect(started.code, started.stderr).toBe(0);
  return started.json().exec_id as string;
}

/** Runs `tether exec watch …`, calling `onLine` with each JSON line as it is printed. */
function watch(args: string[], onLine: (line: Record<string, any>) => void = () => undefined): Promise<{ code: number | null; lines: Record<string, any>[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'exec', 'watch', '--full', ...args], { cwd: cli.home, env: cli.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, any>[] = [];
    let buffered = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const line = JSON.parse(buffered.slice(0, nl)) as Record<string, any>;
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        onLine(line);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines, stderr }));
  });
}

describe('exec watch monitors', () => {
  it('--on-pattern: a trickling command with one Traceback line gives one event, then the summary', async () => {
    const id = await start(['--cmd', "for i in 1 2 3 4 5; do echo step $i; sleep 0.05; done; echo 'Traceback (most recent call last):' >&2; echo step 6; exit 3"]);
    const { code, lines } = await watch(['--id', id, '--on-pattern', 'Traceback', '--on-pattern', 'CUDA out of memory']);
    expect(lines).toEqual([
      { type: 'log', stream: 'stderr', line: 'Traceback (most recent call last):', seq: expect.any(Number) },
      { type: 'summary', exec_id: id, status: 'finished', end_reason: 'exited', exit_code: 3, duration_ms: expect.any(Number), last_seq: expect.any(Number) },
    ]);
    expect(code).toBe(3);
  });

  it('--idle: a command that stalls gives an idle event and exit 125; it keeps running', async () => {
    const id = await start(['--cmd', 'echo working; sleep 60']);
    const { code, lines } = await watch(['--id', id, '--idle', '700ms']);
    expect(lines.map((l) => l.type)).toEqual(['log', 'idle', 'summary']);
    expect(lines[1]).toEqual({ type: 'idle', exec_id: id, idle_ms: 700, last_seq: expect.any(Number) });
    expect(lines[2]).toMatchObject({ type: 'summary', exec_id: id, status: 'running', end_reason: null, exit_code: null });
    expect(code).toBe(125);
    expect((await cli.run(['exec', 'cancel', '--id', id])).json()).toMatchObject({ canceled: true });
  });

  it('--all-running --until all: three executions, a summary each, the first non-zero exit code', async () => {
    const ids = [];
    for (const exit of [0, 4, 5]) ids.push(await start(['--stdin', '--cmd', `echo ready; read x; echo "got $x"; exit ${exit}`]));
    const ready = new Set<string>();
    const written: Promise<unknown>[] = [];
    const result = await watch(['--all-running', '--until', 'all', '--on-pattern', '^(ready|got)'], (line) => {
      // Once the watch has shown an execution's "ready", it follows it: feed its stdin.
      if (line.type === 'log' && line.line === 'ready' && !ready.has(line.exec_id)) {
        ready.add(line.exec_id);
        written.push(cli.run(['exec', 'write', '--id', line.exec_id, '--data', `go-${line.exec_id}\n`, '--eof']));
      }
    });
    await Promise.all(written);
    expect(ready).toEqual(new Set(ids));
    const summaries = result.lines.filter((l) => l.type === 'summary');
    expect(summaries.map((s) => s.exec_id).sort()).toEqual([...ids].sort());
    for (const s of summaries) expect(s).toMatchObject({ status: 'finished', end_reason: 'exited' });
    for (const id of ids) expect(result.lines).toContainEqual(expect.objectContaining({ type: 'log', exec_id: id, line: `got go-${id}` }));
    expect(result.code).toBe(4);
  });

  it('bad monitor flags: a usage error with a hint, nothing on stdout', async () => {
    const bad = await cli.run(['exec', 'watch', '--id', 'x', '--on-pattern', '(']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.error().message).toContain('--on-pattern');
    const twoCursors = await cli.run(['exec', 'watch', '--id', 'a', '--id', 'b', '--after-seq', '3']);
    expect(twoCursors.code).toBe(2);
    expect(twoCursors.error().message).toContain('--after-seq');
  });
});
