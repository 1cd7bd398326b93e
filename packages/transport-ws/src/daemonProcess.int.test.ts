// The daemon as a real process (dist/daemonMain.js): kill -9 it mid-run and restart it on the same
// port and data dir (its executions re-attached); stop it with SIGTERM (left running) and
// SIGUSR2 (cancelled). Run `npx tsc -b packages/transport-ws` first.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { RemoteMachine, StoredEvent } from '@tether/core';
import { processesOf } from '@tether/core/testing';
import { readToken, remoteMachine, startDaemon } from './index.js';
import { eventually, removeTempDirs, startDaemonChild, tempDir, type DaemonChild } from '../test/support.js';

const children: DaemonChild[] = [];
const orphans: string[] = [];
afterAll(async () => {
  for (const { child } of children) child.kill('SIGKILL');
  for (const id of orphans) for (const pid of processesOf(id)) process.kill(pid, 'SIGKILL');
  await removeTempDirs();
});

async function daemonChild(dataDir: string, listen = '127.0.0.1:0'): Promise<DaemonChild> {
  const child = await startDaemonChild(['--listen', listen, '--data-dir', dataDir, '--plugin', '@tether/plugin-process']);
  children.push(child);
  return child;
}

async function stdoutHash(machine: RemoteMachine, id: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await new Promise<void>((resolve, reject) =>
    machine.exec.follow(id, 0).subscribe({
      next: (event: StoredEvent) => {
        if (event.type !== 'OutputProduced') return;
        hash.update(event.data.data);
        bytes += event.data.data.byteLength;
      },
      error: reject,
      complete: resolve,
    }),
  );
  return { sha256: hash.digest('hex'), bytes };
}

it('kill -9 mid-run, restart on the same port and data dir: finished output intact, the interrupted run re-attached and ends with its real exit code, the client reconnects', async () => {
  const dataDir = join(await tempDir(), 'daemon');
  const first = await daemonChild(dataDir);
  const port = new URL(first.url).port;
  const token = await readToken(first.tokenFile);
  const machine = remoteMachine(first.url, { token, name: 'phoenix', reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  try {
    const hashFile = join(dataDir, '..', 'producer.sha256');
    const done = await machine.exec.start({ command: `head -c 5M /dev/urandom | tee >(sha256sum > ${hashFile})`, shell: 'bash' });
    expect(await machine.exec.wait(done.id)).toMatchObject({ endReason: 'exited', exitCode: 0 });
    await eventually(async () => /^[0-9a-f]{64} /.test(await readFile(hashFile, 'utf8').catch(() => '')), 10_000, 'producer hash written');
    const producer = (await readFile(hashFile, 'utf8')).slice(0, 64);

    // Waits on stdin, so it is running across the kill.
    const interrupted = await machine.exec.start({ command: 'echo begun; read line; echo "got $line"; read more; echo "then $more"; exit 3', stdin: true });
    orphans.push(interrupted.id);
    await eventually(async () => (await machine.exec.logs(interrupted.id)).lines.length > 0, 10_000, 'the run began');
    // A follow open across the kill resumes by itself and sees the run to its end.
    const followed: StoredEvent[] = [];
    const followEnded = new Promise<void>((resolve, reject) =>
      machine.exec.follow(interrupted.id, 0).subscribe({ next: (e) => followed.push(e), error: reject, complete: resolve }),
    );
    await eventually(() => followed.some((e) => e.type === 'OutputProduced'), 10_000, 'the follow caught up');
    const pids = processesOf(interrupted.id);

    first.child.kill('SIGKILL');
    expect(await first.exited).toMatchObject({ signal: 'SIGKILL' });
    expect(processesOf(interrupted.id)).toEqual(pids);
    const connectionsBefore = machine.connections;

    const second = await daemonChild(dataDir, `127.0.0.1:${port}`);
    expect(second.url).toBe(first.url);

    // The machine made before the kill: its next call reconnects by itself and succeeds.
    expect(await machine.exec.get(interrupted.id)).toMatchObject({ status: 'running' });
    expect(machine.connections).toBe(connectionsBefore + 1);
    await machine.exec.write(interrupted.id, 'again\n', { writeId: 'after-restart' });
    // Repeated: answered, not written again (else `read more` would get it).
    expect(await machine.exec.write(interrupted.id, 'again\n', { writeId: 'after-restart' })).toEqual({ bytes: 6 });
    await machine.exec.write(interrupted.id, 'last\n', { writeId: 'last' });
    expect(await machine.exec.wait(interrupted.id)).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 3 });
    await followEnded;
    expect(followed.map((e) => e.seq)).toEqual(followed.map((_, i) => i + 1));
    expect(followed.at(-1)?.type).toBe('ExecutionExited');
    expect((await machine.exec.logs(interrupted.id)).lines.map((l) => l.line)).toEqual(['begun', 'got again', 'then last']);
    expect(processesOf(interrupted.id)).toEqual([]);
    expect(await machine.exec.get(done.id)).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0 });
    expect(await stdoutHash(machine, done.id)).toEqual({ sha256: producer, bytes: 5 * 1024 * 1024 });

    // SIGTERM: a graceful stop that leaves the running execution running, for the next daemon.
    const running = await machine.exec.start({ argv: ['sleep', '60'] });
    orphans.push(running.id);
    await eventually(() => processesOf(running.id).length > 0);
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(processesOf(running.id).length).toBeGreaterThan(0);
    expect(second.stderr()).not.toContain(token);

    // SIGUSR2 (daemon stop --cancel-running): a graceful stop that cancels it.
    const third = await daemonChild(dataDir, `127.0.0.1:${port}`);
    expect(await machine.exec.get(running.id)).toMatchObject({ status: 'running' });
    third.child.kill('SIGUSR2');
    expect(await third.exited).toEqual({ code: 0, signal: null });
    expect(processesOf(running.id)).toEqual([]);

    const inspect = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: [] });
    try {
      expect(await inspect.kernel.machine('local').exec.get(running.id)).toMatchObject({ status: 'finished', endReason: 'cancelled' });
    } finally {
      await inspect.close();
    }
  } finally {
    await machine.close();
  }
});

it('reports a second daemon on the same data dir clearly and exits non-zero', async () => {
  const dataDir = join(await tempDir(), 'daemon');
  await daemonChild(dataDir);
  const error = await daemonChild(dataDir).catch((e: unknown) => e);
  expect(String(error)).toMatch(/daemon exited \(1\)[^]*STORE_LOCKED[^]*another daemon is already running/);
});
