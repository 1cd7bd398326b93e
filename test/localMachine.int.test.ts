import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, isTetherError, type ExecApi, type Kernel, type StoredEvent } from '@tether/core';
import processPlugin from '@tether/plugin-process';
import { eventually, processesOf, text, withTempDir } from './support.js';

let kernel: Kernel;
let exec: ExecApi;

beforeAll(async () => {
  kernel = await createKernel({ plugins: [processPlugin] });
  expect(kernel.plugins.failed).toEqual([]);
  exec = kernel.machine('local').exec;
});
afterAll(async () => {
  await kernel.close();
});

async function run(spec: Parameters<ExecApi['start']>[0]) {
  const started = await exec.start(spec);
  const state = await exec.wait(started.id);
  const events = await lastValueFrom(exec.follow(started.id).pipe(toArray()));
  const output = (stream: string) =>
    text(Buffer.concat(events.flatMap((e: StoredEvent) => (e.type === 'OutputProduced' && e.data.stream === stream ? [e.data.data] : []))));
  return { state, events, stdout: output('stdout'), stderr: output('stderr'), pty: output('pty') };
}

describe('LocalMachine with the process backend', () => {
  it('runs argv and shell commands and records output, exit code and byte counts', async () => {
    const a = await run({ argv: ['printf', 'out'] });
    expect(a.state).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0, bytes: { stdout: 3, stderr: 0 } });
    expect(a.stdout).toBe('out');
    const b = await run({ command: 'echo to-out; echo to-err >&2; exit 7' });
    expect(b.state).toMatchObject({ endReason: 'exited', exitCode: 7 });
    expect(b.stdout).toBe('to-out\n');
    expect(b.stderr).toBe('to-err\n');
    expect(b.events[0]!.type).toBe('ExecutionRequested');
    expect(b.events[1]!.type).toBe('ExecutionStarted');
    expect(b.events.at(-1)!.type).toBe('ExecutionExited');
  });

  it('runs in the cwd and environment asked for (merged or exact), with a chosen shell', async () => {
    await withTempDir(async (dir) => {
      const r = await run({ command: 'pwd; echo "$GREETING-$HOME"', cwd: dir, env: { GREETING: 'hi' } });
      expect(r.stdout).toBe(`${dir}\nhi-${process.env['HOME']}\n`);
      const exact = await run({ argv: ['/usr/bin/env'], env: { ONLY: '1' }, envMode: 'exact' });
      expect(exact.stdout.split('\n').filter(Boolean).filter((l) => !l.startsWith('TETHER_EXEC_ID='))).toEqual(['ONLY=1']);
      const bash = await run({ command: 'echo ${BASH_VERSION:+bash}', shell: 'bash' });
      expect(bash.stdout).toBe('bash\n');
    });
  });

  it('ends as signaled when a signal kills it, and as failed_to_start on spawn errors and a missing cwd', async () => {
    expect((await run({ command: 'kill -KILL $$' })).state).toMatchObject({ endReason: 'signaled', signal: 'SIGKILL', exitCode: null });
    expect((await run({ argv: ['/no/such/program'] })).state).toMatchObject({ endReason: 'failed_to_start', error: { code: 'ENOENT' } });
    await withTempDir(async (dir) => {
      const script = join(dir, 'not-executable');
      await writeFile(script, '#!/bin/sh\necho hi\n');
      await chmod(script, 0o644);
      expect((await run({ argv: [script] })).state).toMatchObject({ endReason: 'failed_to_start', error: { code: 'EACCES' } });
      expect((await run({ argv: ['true'], cwd: join(dir, 'missing') })).state).toMatchObject({
        endReason: 'failed_to_start',
        error: { code: 'CWD_NOT_FOUND' },
        pid: null,
      });
    });
  });

  it('starts once when the same id is sent several times at once, and again later', async () => {
    await withTempDir(async (dir) => {
      const marker = join(dir, 'runs');
      const spec = { id: 'idempotent-1', command: `echo $$ >> ${marker}; sleep 0.2` };
      const states = await Promise.all([exec.start(spec), exec.start(spec), exec.start(spec)]);
      expect(new Set(states.map((s) => s.pid)).size).toBe(1);
      await exec.wait('idempotent-1');
      const again = await exec.start(spec);
      expect(again).toMatchObject({ id: 'idempotent-1', status: 'finished', pid: states[0]!.pid });
      expect((await readFile(marker, 'utf8')).trim().split('\n')).toHaveLength(1);
    });
  });

  it('writes stdin once per writeId, closes it for EOF, and refuses stdin that was not asked for', async () => {
    const cat = await exec.start({ argv: ['cat'], stdin: true });
    expect(await exec.write(cat.id, 'hello ', { writeId: 'w1' })).toEqual({ bytes: 6 });
    expect(await exec.write(cat.id, 'hello ', { writeId: 'w1' })).toEqual({ bytes: 6 }); // a retry
    await exec.write(cat.id, Uint8Array.of(0x00, 0xff, 0x0a), { writeId: 'w2', eof: true });
    const done = await exec.wait(cat.id);
    expect(done).toMatchObject({ endReason: 'exited', exitCode: 0, stdinBytes: 9, stdinClosed: true, bytes: { stdout: 9 } });
    const events = await lastValueFrom(exec.follow(cat.id).pipe(toArray()));
    const out = Buffer.concat(events.flatMap((e) => (e.type === 'OutputProduced' ? [e.data.data] : [])));
    expect([...out]).toEqual([...Buffer.from('hello '), 0x00, 0xff, 0x0a]);
    const sleeper = await exec.start({ argv: ['sleep', '30'] });
    await expect(exec.write(sleeper.id, 'x')).rejects.toSatisfy((e) => isTetherError(e, 'STDIN_CLOSED'));
    await exec.cancel(sleeper.id, { graceMs: 100 });
    await expect(exec.write(cat.id, 'late')).rejects.toSatisfy((e) => isTetherError(e, 'EXEC_FINISHED'));
  });

  it('cancels a whole process tree, including a child that ignores TERM and one that left the group', async () => {
    const tree = await exec.start({
      command: `sleep 100 & (trap '' TERM; sleep 100) & setsid sleep 100 & echo ready; wait`,
    });
    await eventually(async () => (await exec.get(tree.id)).bytes.stdout > 0);
    await eventually(() => processesOf(tree.id).length >= 4);
    const result = await exec.cancel(tree.id, { graceMs: 300 });
    expect(result.cancelled).toBe(true);
    expect(result.state).toMatchObject({ status: 'finished', endReason: 'cancelled', survivors: [] });
    expect(processesOf(tree.id)).toEqual([]);
    const events = await lastValueFrom(exec.follow(tree.id).pipe(toArray()));
    const signals = events.flatMap((e) => (e.type === 'SignalSent' ? [`${e.data.signal}:${e.data.reason}`] : []));
    expect(signals).toEqual(['SIGTERM:cancel', 'SIGKILL:cancel']);
    expect(await exec.cancel(tree.id)).toMatchObject({ cancelled: false, reason: 'already finished' });
  });

  it('times out with end_reason timed_out, and a user signal ends as signaled', async () => {
    const slow = await run({ argv: ['sleep', '100'], timeoutMs: 200, killGraceMs: 200 });
    expect(slow.state).toMatchObject({ endReason: 'timed_out', signal: 'SIGTERM' });
    const interrupted = await exec.start({ argv: ['sleep', '100'] });
    await exec.signal(interrupted.id, 'INT');
    expect(await exec.wait(interrupted.id)).toMatchObject({ endReason: 'signaled', signal: 'SIGINT' });
    await expect(exec.signal(interrupted.id, 'NOPE')).rejects.toSatisfy((e) => isTetherError(e, 'INVALID_ARGUMENT'));
  });

  it('runs in a terminal of the size asked for, and resizes it', async () => {
    const r = await run({ command: 'stty size; test -t 1 && echo is-a-tty', tty: { cols: 101, rows: 31 } });
    expect(r.state.bytes.stdout).toBe(0);
    expect(r.pty).toContain('31 101');
    expect(r.pty).toContain('is-a-tty');
    const resized = await exec.start({ command: 'read line; stty size', tty: { cols: 80, rows: 24 }, stdin: true });
    await exec.resize(resized.id, 132, 43);
    await exec.write(resized.id, 'go\n');
    await exec.wait(resized.id);
    const lines = await exec.logs(resized.id, { streams: ['pty'], tailLines: 5 });
    expect(lines.lines.map((l) => l.line)).toContain('43 132');
  });

  it('tails logs by lines and bytes, and long-polls reads', async () => {
    const r = await run({ command: 'seq 1 5000; echo oops >&2' });
    const tail = await exec.logs(r.state.id, { tailLines: 3 });
    expect(tail.lines.map((l) => l.line)).toEqual(['4998', '4999', '5000']);
    const both = await exec.logs(r.state.id, { tailLines: 2, streams: ['stdout', 'stderr'] });
    expect(both.lines.map((l) => `${l.stream}:${l.line}`)).toEqual(['stdout:5000', 'stderr:oops']);
    const bytes = await exec.logs(r.state.id);
    expect(bytes.lines.at(-1)!.line).toBe('5000');
    expect(bytes.lines.map((l) => l.line).join('\n').length).toBeLessThanOrEqual(2000);

    const later = await exec.start({ command: 'sleep 0.3; echo late' });
    const page = await exec.read(later.id, { afterSeq: 2, waitMs: 10_000 });
    expect(page.events.length).toBeGreaterThan(0);
    expect(page.events[0]!.seq).toBe(3);
  });

  it('runs 20 executions at once, each with its own output', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => run({ command: `for j in 1 2 3; do echo ${i}-$j; done` })));
    results.forEach((r, i) => expect(r.stdout).toBe(`${i}-1\n${i}-2\n${i}-3\n`));
  });
});
