import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKernel, type Kernel } from '@tether/core';
import { liveProcesses } from '@tether/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import processPlugin, { ChildProcessBackend } from './index.js';

let kernel: Kernel | undefined;
afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
});

describe('the plugin in a kernel', () => {
  it('loads, provides the process backend, and runs executions end to end', async () => {
    kernel = await createKernel({ plugins: [{ plugin: processPlugin, config: { drainTimeoutMs: 200, env: { GREETING: 'hello' } } }] });
    expect(kernel.plugins).toEqual({ loaded: ['@tether/plugin-process'], failed: [] });
    const exec = kernel.machine('local').exec;

    const run = await exec.start({ command: 'echo "$GREETING"; echo err >&2; exit 4' });
    expect(await exec.wait(run.id)).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 4, pgid: run.pid });
    expect((await exec.logs(run.id, { streams: ['stdout'] })).lines.map((l) => l.line)).toEqual(['hello']);

    const tty = await exec.start({ command: 'stty size', tty: { cols: 100, rows: 20 } });
    await exec.wait(tty.id);
    expect((await exec.logs(tty.id, { streams: ['pty'] })).lines.map((l) => l.line.trimEnd())).toEqual(['20 100']);

    const long = await exec.start({ command: 'sleep 100 & sleep 100; wait' });
    const cancelled = await exec.cancel(long.id, { graceMs: 2000 });
    expect(cancelled.state).toMatchObject({ endReason: 'cancelled', survivors: [] });

    const failed = await exec.start({ argv: ['tether-no-such-program'] });
    expect(failed).toMatchObject({ status: 'finished', endReason: 'failed_to_start', error: { code: 'ENOENT' } });
  });

  it('with supervisors: closing the kernel sends the idle ones away, and none is left starting or leaving once it returns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tether-pool-'));
    const supervisorsOf = () =>
      liveProcesses((pid) => {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv.includes('--dir') && argv[argv.indexOf('--dir') + 1] === dir;
      });
    try {
      for (let round = 0; round < 3; round++) {
        kernel = await createKernel({ plugins: [{ plugin: processPlugin, config: { supervisorDir: dir, warmSupervisors: 3 } }] });
        const exec = kernel.machine('local').exec;
        // Each start takes a supervisor from the pool and starts another one in its place.
        const runs = await Promise.all([1, 2, 3, 4].map(() => exec.start({ command: 'exit 3' })));
        for (const run of runs) expect(await exec.wait(run.id)).toMatchObject({ exitCode: 3 });
        await kernel.close();
        kernel = undefined;
        expect(supervisorsOf()).toEqual([]);
        // Nothing is written in the directory afterwards: it can be removed at once.
        expect((await readdir(dir)).filter((name) => name !== 'supervisors.log')).toEqual([]);
      }
      expect(await readFile(join(dir, 'supervisors.log'), 'utf8')).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const backend of ['direct child', 'supervisor'] as const) {
    it(`${backend}: a write blocked by a descendant that holds stdin without reading it fails once the command ends, and the execution ends`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'tether-stdin-'));
      let pgid: number | undefined;
      try {
        const config = { drainTimeoutMs: 200, ...(backend === 'supervisor' ? { supervisorDir: dir } : {}) };
        kernel = await createKernel({ plugins: [{ plugin: processPlugin, config }] });
        const exec = kernel.machine('local').exec;
        // fd 3 keeps the stdin pipe open in the background sleep, which never reads it.
        const run = await exec.start({ command: 'exec 3<&0; sleep 60 >/dev/null 2>&1 & read line; echo "got $line"; exit 5', stdin: true });
        pgid = run.pid;
        await exec.write(run.id, 'first\n', { writeId: 'w1' });
        // Far more than a pipe holds: only part of it can ever leave.
        const blocked = exec.write(run.id, Buffer.alloc(4 * 1024 * 1024, 0x61), { writeId: 'w2' });
        expect(await exec.wait(run.id)).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 5 });
        await expect(blocked).rejects.toMatchObject({ code: 'STDIN_CLOSED' });
        expect((await exec.logs(run.id, { streams: ['stdout'] })).lines.map((l) => l.line)).toEqual(['got first']);
        // Only the write that went through is recorded as input.
        const inputs = (await exec.read(run.id, { limit: 1000 })).events.filter((e) => e.type === 'InputWritten');
        expect(inputs.map((e) => e.data)).toEqual([{ bytes: 6, writeId: 'w1', eof: false }]);
      } finally {
        if (pgid !== undefined) {
          try {
            process.kill(-pgid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await kernel?.close();
        kernel = undefined;
        await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      }
    });
  }

  it('is reported and skipped with an invalid config', async () => {
    kernel = await createKernel({ plugins: [{ plugin: processPlugin, config: { drainTimeoutMs: -1, unknown: true } }] });
    expect(kernel.plugins.loaded).toEqual([]);
    expect(kernel.plugins.failed[0]?.error.code).toBe('PLUGIN_LOAD_FAILED');
  });

  it('refuses invalid options when the backend is built directly', () => {
    expect(() => new ChildProcessBackend({ drainTimeoutMs: 1.5 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
