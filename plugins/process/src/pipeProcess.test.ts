import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rejection } from '@tether/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Harness, isAlive, outputContaining, waitFor } from '../test/harness.js';

const harness = new Harness({ drainTimeoutMs: 300, env: { FROM_CONFIG: 'config-value' } });
let dir: string;

beforeAll(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'tether-process-')));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => harness.cleanup());

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

describe('pipes: exit and output', () => {
  it.each([0, 3, 255])('reports exit code %i', async (code) => {
    const result = await harness.run({ argv: ['sh', '-c', `exit ${code}`] });
    expect(result.exit).toEqual({ exitCode: code, signal: null });
  });

  it('reports death by signal with a null exit code', async () => {
    const result = await harness.run({ argv: ['sh', '-c', 'echo before; kill -TERM $$; echo after'] });
    expect(result.exit).toEqual({ exitCode: null, signal: 'SIGTERM' });
    expect(result.text('stdout')).toBe('before\n');
  });

  it('keeps stdout and stderr apart', async () => {
    const result = await harness.run({ argv: ['sh', '-c', 'echo out1; echo err1 >&2; echo out2'] });
    expect(result.text('stdout')).toBe('out1\nout2\n');
    expect(result.text('stderr')).toBe('err1\n');
  });

  it('returns invalid UTF-8 and NUL bytes byte for byte', async () => {
    const result = await harness.run({ argv: ['printf', '\\377\\376\\000abc\\303\\000\\n\\200'] });
    expect([...result.bytes('stdout')]).toEqual([0xff, 0xfe, 0x00, 0x61, 0x62, 0x63, 0xc3, 0x00, 0x0a, 0x80]);
  });

  it('gives each of 20 concurrent executions exactly its own output', async () => {
    const script = 'i=0; while [ $i -lt 300 ]; do echo "$TAG line $i"; i=$((i+1)); done; echo "$TAG err" >&2';
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => harness.run({ argv: ['sh', '-c', script], env: { TAG: `exec-${n}` } })),
    );
    results.forEach((result, n) => {
      const expected = Array.from({ length: 300 }, (_, i) => `exec-${n} line ${i}\n`).join('');
      expect(result.text('stdout')).toBe(expected);
      expect(result.text('stderr')).toBe(`exec-${n} err\n`);
      expect(result.exit.exitCode).toBe(0);
    });
  });

  it('completes the output after the drain time when a descendant keeps the pipe open', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'echo before; sleep 100 & echo "bg $!"'] });
    const result = await harness.collect(proc);
    const bg = Number(/bg (\d+)/.exec(result.text('stdout'))?.[1]);
    expect(result.exit.exitCode).toBe(0);
    expect(result.text('stdout')).toContain('before\n');
    // The output ended although the holder of the pipe is still alive.
    expect(isAlive(bg)).toBe(true);
  });

  it('loses nothing written before the exit while the output is paused longer than the drain time', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'head -c 40000 /dev/urandom | od -An -v -tx1 | head -c 30000'] });
    const chunks: Uint8Array[] = [];
    let completed = false;
    proc.output$.subscribe({ next: (c) => chunks.push(c.data), complete: () => (completed = true) });
    proc.pauseOutput();
    const before = chunks.length;
    await proc.exit;
    // Stay paused for several drain times: paused time must not count against the drain.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(chunks.length).toBe(before);
    expect(completed).toBe(false);
    proc.resumeOutput();
    await waitFor(() => completed, 'the output to complete');
    expect(Buffer.concat(chunks).byteLength).toBe(30000);
  });
});

describe('pipes: stdin', () => {
  it('round-trips written bytes through cat and closes stdin', async () => {
    const proc = await harness.start({ argv: ['cat'], stdin: true });
    const collected = harness.collect(proc);
    const input = randomBytes(1024 * 1024 + 17);
    let at = 0;
    for (const size of [1, 100, 65536, 300000, 1]) {
      await proc.write(input.subarray(at, at + size));
      at += size;
    }
    await proc.write(input.subarray(at));
    await proc.closeStdin();
    const result = await collected;
    expect(sha256(result.bytes('stdout'))).toBe(sha256(input));
    expect(result.exit.exitCode).toBe(0);
    expect((await rejection(proc.write(new Uint8Array([1])))).code).toBe('STDIN_CLOSED');
  });

  it('refuses writes when stdin was not requested, and the child sees end of file at once', async () => {
    const proc = await harness.start({ argv: ['cat'] });
    expect((await rejection(proc.write(new Uint8Array([65])))).code).toBe('STDIN_CLOSED');
    const result = await harness.collect(proc);
    expect(result.exit.exitCode).toBe(0);
    expect(result.bytes('stdout').byteLength).toBe(0);
  });

  it('rejects a write the exited process can no longer take', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'exec 0<&-; exit 0'], stdin: true });
    await harness.collect(proc);
    expect((await rejection(proc.write(randomBytes(200000)))).code).toBe('STDIN_CLOSED');
  });
});

describe('pipes: environment and working directory', () => {
  const envOf = (text: string): Map<string, string> =>
    new Map(
      text
        .split('\n')
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );

  it('merges the environment onto the daemon’s, with the configured variables and the exec id', async () => {
    const proc = await harness.start({ argv: ['/usr/bin/env'], env: { FOO: 'bar baz', FROM_CONFIG: 'spec-wins' }, id: 'merge-1' });
    const env = envOf((await harness.collect(proc)).text('stdout'));
    expect(env.get('FOO')).toBe('bar baz');
    expect(env.get('PATH')).toBe(process.env['PATH']);
    expect(env.get('FROM_CONFIG')).toBe('spec-wins');
    expect(env.get('TETHER_EXEC_ID')).toBe('merge-1');
  });

  it('applies the configured variables in merge mode', async () => {
    const env = envOf((await harness.run({ argv: ['/usr/bin/env'] })).text('stdout'));
    expect(env.get('FROM_CONFIG')).toBe('config-value');
  });

  it('uses exactly the given environment (plus the exec id) in exact mode', async () => {
    const result = await harness.run({ argv: ['/usr/bin/env'], env: { ONLY: '1' }, envMode: 'exact', id: 'exact-1' });
    expect(Object.fromEntries(envOf(result.text('stdout')))).toEqual({ ONLY: '1', TETHER_EXEC_ID: 'exact-1' });
  });

  it('runs in the given working directory', async () => {
    const result = await harness.run({ argv: ['sh', '-c', 'pwd; echo "$PWD"'], cwd: dir });
    expect(result.text('stdout')).toBe(`${dir}\n${dir}\n`);
  });

  it('fails with CWD_NOT_FOUND for a missing directory or a file', async () => {
    expect((await rejection(harness.start({ argv: ['true'], cwd: join(dir, 'missing') }))).code).toBe('CWD_NOT_FOUND');
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expect((await rejection(harness.start({ argv: ['true'], cwd: file }))).code).toBe('CWD_NOT_FOUND');
  });
});

describe('pipes: spawn failures', () => {
  it('fails with SPAWN_FAILED / ENOENT for a missing program', async () => {
    for (const argv of [['tether-no-such-program'], [join(dir, 'nope')]] as const) {
      const error = await rejection(harness.start({ argv: [...argv] as [string] }));
      expect(error.code).toBe('SPAWN_FAILED');
      expect(error.details['errno']).toBe('ENOENT');
    }
  });

  it('fails with SPAWN_FAILED / EACCES for a file that is not executable', async () => {
    const script = join(dir, 'not-executable.sh');
    writeFileSync(script, '#!/bin/sh\necho hi\n');
    chmodSync(script, 0o644);
    const error = await rejection(harness.start({ argv: [script] }));
    expect(error.code).toBe('SPAWN_FAILED');
    expect(error.details['errno']).toBe('EACCES');
  });

  it('fails with SPAWN_FAILED / E2BIG for a huge argv', async () => {
    for (const argv of [['echo', 'x'.repeat(200_000)], ['echo', ...Array.from({ length: 100_000 }, () => 'y'.repeat(100))]]) {
      const error = await rejection(harness.start({ argv: argv as [string, ...string[]] }));
      expect(error.code).toBe('SPAWN_FAILED');
      expect(error.details['errno']).toBe('E2BIG');
    }
  });

  it('rejects a malformed spec with INVALID_ARGUMENT', async () => {
    expect((await rejection(harness.start({ argv: [] as unknown as [string] }))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(harness.start({ argv: ['echo', 'a\0b'] }))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(harness.start({ argv: ['env'], env: { 'A=B': 'c' } }))).code).toBe('INVALID_ARGUMENT');
  });
});

describe('pipes: signals', () => {
  it('signals the whole group, reaching grandchildren', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'sleep 100 & echo "bg $!"; wait'] });
    const grandchild = Number(/bg (\d+)/.exec(await outputContaining(proc, /bg \d+\n/))?.[1]);
    expect(isAlive(grandchild)).toBe(true);
    proc.signal('TERM');
    expect(await proc.exit).toEqual({ exitCode: null, signal: 'SIGTERM' });
    await waitFor(() => !isAlive(grandchild), 'the grandchild to die of the group signal');
  });

  it('accepts SIGTERM and TERM, refuses unknown names, and ignores a group that is gone', async () => {
    const proc = await harness.start({ argv: ['sleep', '100'] });
    expect(() => proc.signal('NOT_A_SIGNAL')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    proc.signal('SIGTERM');
    expect((await proc.exit).signal).toBe('SIGTERM');
    await waitFor(async () => (await proc.survivors()).length === 0, 'the group to be gone');
    expect(() => proc.signal('TERM')).not.toThrow();
  });

  it('has its own process group and refuses resize without a terminal', async () => {
    const proc = await harness.start({ argv: ['sleep', '100'] });
    expect(proc.pgid).toBe(proc.pid);
    expect(await proc.survivors()).toEqual([proc.pid]);
    expect(() => proc.resize(80, 24)).toThrow(expect.objectContaining({ code: 'NOT_A_TTY' }));
  });
});
