// The backend on a real single-node Slurm: Slurm-specific behaviour (queueing with Slurm's reason,
// cancel while pending and while running, Slurm's own time limit, a refused job, bulk output
// byte-identical, resume from a seq), then the machine contract's cases with every execution a job
// (no stdin and no terminal: a batch job has neither). One file and one cluster, so that everything
// else runs while the time-limit case waits for Slurm (a minute at least).
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MachineApi, StoredEvent } from '@tether/core';
import { eventually, machineContract } from '@tether/core/testing';
import filesystemPlugin from '@tether/plugin-filesystem';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import { startSlurmCluster, type SlurmCluster } from '../src/testing/index.js';
import { availability, skipReason, slurmKernel, tempDir } from './support.js';

const stdoutOf = (events: readonly StoredEvent[], stream = 'stdout') =>
  Buffer.concat(events.flatMap((e) => (e.type === 'OutputProduced' && e.data.stream === stream ? [e.data.data] : [])));

describe.skipIf(!availability.ok)(`slurm backend on a local cluster${skipReason}`, () => {
  let cluster: SlurmCluster;
  let machine: MachineApi;
  let close: () => Promise<void>;
  let remove: () => Promise<void>;
  let work: string;
  let overTime: string;

  beforeAll(async () => {
    cluster = await startSlurmCluster();
    const state = await tempDir();
    remove = state.remove;
    work = state.dir;
    const kernel = await slurmKernel(cluster, state.dir);
    machine = kernel.kernel.machine('local');
    close = kernel.close;
    // Slurm's own time limit counts whole minutes and is checked every ~30 s: start that job first
    // so the other cases run while it waits to be timed out.
    overTime = (await machine.exec.start({ command: 'echo started; sleep 300', backendOptions: { time: '1' } })).id;
  });
  afterAll(async () => {
    await close?.();
    await cluster?.stop();
    await remove?.();
  });

  it('holds a job pending with Slurm\'s reason (a partition that is down), then runs it to its exit code once the partition is up', async () => {
    const waiting = await machine.exec.start({ command: 'echo "on $SLURM_JOB_PARTITION"; echo err >&2; exit 3', backendOptions: { partition: 'held' } });
    expect(waiting).toMatchObject({ status: 'queued', startedAt: null, backendRef: { jobId: expect.stringMatching(/^\d+$/) } });
    await eventually(async () => (await machine.exec.get(waiting.id)).queueReason === 'PartitionDown');
    expect((await machine.exec.get(waiting.id)).status).toBe('queued');
    await cluster.slurm('scontrol', ['update', 'PartitionName=held', 'State=UP']);
    try {
      const done = await machine.exec.wait(waiting.id);
      expect(done).toMatchObject({ endReason: 'exited', exitCode: 3, queueReason: null, backendRef: { nodes: cluster.node, partition: 'held' } });
      const events = await lastValueFrom(machine.exec.follow(waiting.id).pipe(toArray()));
      const types = events.map((e) => e.type);
      expect(types.indexOf('ExecutionQueued')).toBeLessThan(types.indexOf('ExecutionStarted'));
      expect(types.at(-1)).toBe('ExecutionExited');
      expect(events.flatMap((e) => (e.type === 'ExecutionQueued' ? [e.data.reason] : []))).toContain('PartitionDown');
      expect(stdoutOf(events).toString()).toBe('on held\n');
      expect(stdoutOf(events, 'stderr').toString()).toBe('err\n');
    } finally {
      await cluster.slurm('scontrol', ['update', 'PartitionName=held', 'State=DOWN']);
    }
  });

  it('queues a job behind another one that holds the GPUs (reason Resources) and runs it when that one is cancelled while running', async () => {
    const holder = await machine.exec.start({ argv: ['sleep', '300'], backendOptions: { partition: 'gpu', gres: 'gpu:2' } });
    await eventually(async () => (await machine.exec.get(holder.id)).status === 'running');
    const waiting = await machine.exec.start({ command: 'echo "gpus=$SLURM_JOB_GPUS"', backendOptions: { partition: 'gpu', gres: 'gpu:2' } });
    await eventually(async () => (await machine.exec.get(waiting.id)).queueReason === 'Resources');

    const cancelled = await machine.exec.cancel(holder.id, { graceMs: 1000 });
    expect(cancelled.state).toMatchObject({ endReason: 'cancelled' });
    expect(cancelled.state.startedAt).not.toBeNull();
    const done = await machine.exec.wait(waiting.id);
    expect(done).toMatchObject({ endReason: 'exited', exitCode: 0, backendRef: { partition: 'gpu' } });
    const events = await lastValueFrom(machine.exec.follow(waiting.id).pipe(toArray()));
    expect(stdoutOf(events).toString()).toMatch(/^gpus=\S+/);
  });

  it('a GPU gate waits in Slurm\'s queue: the job asks for a GPU and gets one (no GPU probe on this machine)', async () => {
    const gated = await machine.exec.start({ command: 'echo "gpus=$SLURM_JOB_GPUS"', gpuGate: { maxUtilizationPct: 10, maxMemoryUsedMiB: 1000 } });
    const done = await machine.exec.wait(gated.id);
    expect(done).toMatchObject({ endReason: 'exited', exitCode: 0 });
    const events = await lastValueFrom(machine.exec.follow(gated.id).pipe(toArray()));
    expect(stdoutOf(events).toString()).toMatch(/^gpus=\d+\n$/);
  });

  it('cancels a job while it is pending: it never starts and Slurm no longer holds it', async () => {
    const pending = await machine.exec.start({ command: 'echo should-not-run', backendOptions: { partition: 'held' } });
    await eventually(async () => (await machine.exec.get(pending.id)).queueReason === 'PartitionDown');
    const jobId = (await machine.exec.get(pending.id)).backendRef!['jobId']!;
    const cancelled = await machine.exec.cancel(pending.id, { graceMs: 1000 });
    expect(cancelled).toMatchObject({ cancelled: true, state: { endReason: 'cancelled', startedAt: null, bytes: { stdout: 0 } } });
    expect(await cluster.slurm('squeue', ['-h', '-t', 'all', '-j', jobId, '-o', '%T'])).toMatch(/^CANCELLED/);
  });

  it('records a job Slurm refuses (an unknown partition) as failed_to_start with Slurm\'s message', async () => {
    const refused = await machine.exec.start({ argv: ['true'], backendOptions: { partition: 'no-such-partition' } });
    expect(refused).toMatchObject({ status: 'finished', endReason: 'failed_to_start', error: { code: 'SLURM_REJECTED' } });
    expect(refused.error!.message).toMatch(/invalid partition/i);
    const badOption = await machine.exec.start({ argv: ['true'], backendOptions: { sbatchArgs: ['--output=/tmp/elsewhere'] } });
    expect(badOption).toMatchObject({ endReason: 'failed_to_start', error: { code: 'INVALID_ARGUMENT' } });
    const unknown = await machine.exec.start({ argv: ['true'], backendOptions: { partitoin: 'debug' } });
    expect(unknown).toMatchObject({ endReason: 'failed_to_start', error: { code: 'INVALID_ARGUMENT' } });
  });

  it('streams 10 MiB of output byte-identical, stdout and stderr apart, and resumes from any seq', async () => {
    const payload = randomBytes(10 * 1024 * 1024);
    const file = join(work, 'payload.bin');
    await writeFile(file, payload);
    const started = await machine.exec.start({ command: `cat ${file}; echo done >&2` });
    // One follower from the start, and one that joins mid-stream from a seq it had seen.
    const full = lastValueFrom(machine.exec.follow(started.id).pipe(toArray()));
    await eventually(async () => (await machine.exec.get(started.id)).lastSeq > 5);
    const resumeAt = 4;
    const resumed = await lastValueFrom(machine.exec.follow(started.id, resumeAt).pipe(toArray()));
    const all = await full;
    const state = await machine.exec.get(started.id);
    expect(state).toMatchObject({ endReason: 'exited', exitCode: 0, bytes: { stdout: payload.length, stderr: 5 } });
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(stdoutOf(all))).toBe(sha(payload));
    expect(stdoutOf(all, 'stderr').toString()).toBe('done\n');
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: state.lastSeq }, (_, i) => i + 1));
    expect(resumed.map((e) => e.seq)).toEqual(Array.from({ length: state.lastSeq - resumeAt }, (_, i) => i + resumeAt + 1));
    expect(Buffer.concat([stdoutOf(all.slice(0, resumeAt)), stdoutOf(resumed)]).equals(payload)).toBe(true);
  });

  it('gpu status reports the cluster\'s GPUs by node and partition (sinfo GRES), and which a job holds; gpu wait opens when a job lets go', async () => {
    const state = await tempDir();
    const probing = await slurmKernel(cluster, state.dir, [], { gpuProbe: true });
    try {
      const gpu = probing.kernel.machine('local').gpu;
      const idle = await gpu.probe();
      expect(idle).toMatchObject({ available: true, processes: [] });
      expect(idle.gpus.map((g) => [g.index, g.name, g.node, g.partitions, g.allocated, g.memoryTotalMiB])).toEqual([
        [0, 'fake', cluster.node, ['debug', 'gpu', 'held'], false, null],
        [1, 'fake', cluster.node, ['debug', 'gpu', 'held'], false, null],
      ]);
      const holder = await machine.exec.start({ argv: ['sleep', '300'], backendOptions: { partition: 'gpu', gres: 'gpu:2' } });
      await eventually(async () => (await machine.exec.get(holder.id)).status === 'running');
      await eventually(async () => (await gpu.probe()).gpus.every((g) => g.allocated));
      const timedOut = await gpu.waitFree({ maxUtilizationPct: 10, maxMemoryUsedMiB: 1000, requireNoProcesses: true, pollMs: 100, timeoutMs: 300 }).catch((e: unknown) => e);
      expect(timedOut).toMatchObject({ code: 'GATE_TIMEOUT' });
      const opens = gpu.waitFree({ maxUtilizationPct: 10, maxMemoryUsedMiB: 1000, requireNoProcesses: true, pollMs: 100 });
      await machine.exec.cancel(holder.id, { graceMs: 1000 });
      expect((await opens).gpus).toHaveLength(2);
    } finally {
      await probing.close();
      await state.remove();
    }
  });

  const cleanups: Array<() => Promise<void>> = [];
  machineContract(
    'LocalMachine whose default backend is Slurm',
    async ({ workDir }) => {
      const state = await tempDir();
      const { kernel, close } = await slurmKernel(cluster, state.dir, [
        { plugin: filesystemPlugin, config: { roots: [workDir] } },
        { plugin: gpuPlugin, config: { command: 'tether-no-nvidia-smi' } },
      ]);
      return {
        machine: kernel.machine('local'),
        async close() {
          await close();
          await state.remove();
          for (const cleanup of cleanups) await cleanup();
        },
      };
    },
    async () => {
      const work = await tempDir('tether-slurm-work-');
      cleanups.push(work.remove);
      return work.dir;
    },
    { unsupported: ['stdin', 'tty'] },
  );

  // Last: it waits for the job started in beforeAll.
  it('ends a job past Slurm\'s own time limit (--time) as timed_out', { timeout: 150_000 }, async () => {
    const state = await machine.exec.wait(overTime);
    expect(state).toMatchObject({ endReason: 'timed_out', stopReason: 'timeout' });
    expect(state.startedAt).not.toBeNull();
  });
});
