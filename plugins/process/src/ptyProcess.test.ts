import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rejection } from '@tether/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Harness, outputContaining, procStat, waitFor } from '../test/harness.js';

const harness = new Harness();
const tty = { cols: 91, rows: 37 };
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tether-pty-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => harness.cleanup());

describe('pty', () => {
  it('runs in a terminal of the requested size, output on the pty stream only', async () => {
    const result = await harness.run({
      argv: ['sh', '-c', 'test -t 0 && test -t 1 && test -t 2 && echo is-a-tty; stty size; echo "term=$TERM"; echo err >&2'],
      tty,
    });
    expect(result.exit).toEqual({ exitCode: 0, signal: null });
    expect(result.chunks.every((c) => c.stream === 'pty')).toBe(true);
    expect(result.text('pty')).toBe(`is-a-tty\r\n37 91\r\nterm=${process.env['TERM'] ?? 'xterm-256color'}\r\nerr\r\n`);
  });

  it('reports the new size after a resize', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'stty size; read line; stty size'], tty, stdin: true });
    const collected = harness.collect(proc);
    await outputContaining(proc, '37 91\r\n');
    proc.resize(120, 50);
    await proc.write(Buffer.from('go\n'));
    const result = await collected;
    expect(result.text('pty')).toMatch(/^37 91\r\n[\s\S]*50 120\r\n$/);
  });

  it('returns raw bytes untouched (no re-encoding)', async () => {
    const result = await harness.run({ argv: ['printf', '\\377\\376\\000abc\\303\\200'], tty });
    expect([...result.bytes('pty')]).toEqual([0xff, 0xfe, 0x00, 0x61, 0x62, 0x63, 0xc3, 0x80]);
  });

  it.each([
    ['exit 3', { exitCode: 3, signal: null }],
    ['kill -TERM $$', { exitCode: null, signal: 'SIGTERM' }],
  ])('reports `%s`', async (script, exit) => {
    expect((await harness.run({ argv: ['sh', '-c', script], tty })).exit).toEqual(exit);
  });

  it('never loses the tail of the output when the process exits', async () => {
    // node-pty alone lost the end of this output in about a third of runs.
    const script = 'head -c 3000 /dev/zero | od -An -v; echo done';
    const lengths = new Set<number>();
    for (let run = 0; run < 15; run++) {
      const text = (await harness.run({ argv: ['sh', '-c', script], tty })).text('pty');
      expect(text.endsWith('done\r\n')).toBe(true);
      lengths.add(text.length);
    }
    expect(lengths.size).toBe(1);
  });

  it('keeps output written before the exit while paused across the exit', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'head -c 3000 /dev/zero | od -An -v; echo done'], tty });
    let text = '';
    let completed = false;
    proc.output$.subscribe({ next: (c) => (text += Buffer.from(c.data).toString('latin1')), complete: () => (completed = true) });
    proc.pauseOutput();
    const before = text.length;
    // node-pty closes the terminal 200 ms after the exit, paused or not; the exit resolves after that.
    await proc.exit;
    expect(text.length).toBe(before);
    proc.resumeOutput();
    await waitFor(() => completed, 'the output to complete');
    expect(text.endsWith('done\r\n')).toBe(true);
    expect(text.length).toBeGreaterThan(10_000);
  });

  it('writes to the terminal, and closing stdin sends end of file', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'read a; echo "got:$a"; cat; echo cat-ended'], tty, stdin: true });
    const collected = harness.collect(proc);
    await proc.write(Buffer.from('hello\n'));
    await outputContaining(proc, 'got:hello');
    await proc.closeStdin();
    const result = await collected;
    expect(result.text('pty')).toContain('cat-ended');
    expect(result.exit.exitCode).toBe(0);
    expect((await rejection(proc.write(Buffer.from('x')))).code).toBe('STDIN_CLOSED');
  });

  it('writes large input through a full terminal byte for byte (raw mode)', async () => {
    const input = randomBytes(300_000);
    const proc = await harness.start({ argv: ['sh', '-c', `stty raw -echo; echo ready; head -c ${input.byteLength} | sha256sum`], tty, stdin: true });
    const collected = harness.collect(proc);
    await outputContaining(proc, 'ready');
    await proc.write(input);
    const result = await collected;
    expect(result.text('pty')).toContain(`${createHash('sha256').update(input).digest('hex')}  -`);
  });

  it('gives a terminal without stdin end of file at once and refuses writes', async () => {
    const proc = await harness.start({ argv: ['cat'], tty });
    expect((await rejection(proc.write(Buffer.from('x')))).code).toBe('STDIN_CLOSED');
    expect((await harness.collect(proc)).exit).toEqual({ exitCode: 0, signal: null });
  });

  it('reports a plain exit for a leader that closes its terminal before exiting (no SIGHUP)', async () => {
    // node-pty alone closed the terminal at that point and the hang-up killed about a third of these.
    for (let run = 0; run < 12; run++) {
      expect((await harness.run({ argv: ['cat'], tty })).exit).toEqual({ exitCode: 0, signal: null });
    }
  });

  it('leads its own session and process group, tagged with the exec id', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'echo "id=$TETHER_EXEC_ID"; sleep 100'], tty, id: 'pty-tagged' });
    await outputContaining(proc, 'id=pty-tagged');
    expect(proc.pgid).toBe(proc.pid);
    expect(procStat(proc.pid)).toMatchObject({ pgrp: proc.pid, session: proc.pid });
    await waitFor(async () => (await proc.survivors()).length === 2, 'sh and sleep to be listed');
    proc.signal('KILL');
    expect((await proc.exit).signal).toBe('SIGKILL');
    await waitFor(async () => (await proc.survivors()).length === 0, 'the group to be gone');
  });

  it('fails like execvp would: ENOENT, EACCES, E2BIG', async () => {
    const script = join(dir, 'not-executable.sh');
    writeFileSync(script, '#!/bin/sh\necho hi\n');
    chmodSync(script, 0o644);
    const cases: Array<[[string, ...string[]], string]> = [
      [['tether-no-such-program'], 'ENOENT'],
      [[join(dir, 'missing')], 'ENOENT'],
      [[script], 'EACCES'],
      [[dir], 'EACCES'],
      [['echo', 'x'.repeat(200_000)], 'E2BIG'],
      [['echo', ...Array.from({ length: 100_000 }, () => 'y'.repeat(100))], 'E2BIG'],
    ];
    for (const [argv, errno] of cases) {
      const error = await rejection(harness.start({ argv, tty }));
      expect(error.code).toBe('SPAWN_FAILED');
      expect(error.details['errno']).toBe(errno);
    }
    expect((await rejection(harness.start({ argv: ['true'], tty, cwd: join(dir, 'missing') }))).code).toBe('CWD_NOT_FOUND');
  });

  it('finds programs on the PATH of the given environment', async () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'tether-hello'), '#!/bin/sh\necho "hello-from-path $TERM"\n', { mode: 0o755 });
    const result = await harness.run({ argv: ['tether-hello'], tty, env: { PATH: `${bin}:/usr/bin:/bin` }, envMode: 'exact' });
    // Without TERM in the environment, the configured default applies.
    expect(result.text('pty')).toBe('hello-from-path xterm-256color\r\n');
  });

  it('validates resize', async () => {
    const proc = await harness.start({ argv: ['sleep', '100'], tty });
    expect(() => proc.resize(0, 10)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
