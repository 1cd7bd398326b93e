// The GPU gate holds an execution in `queued` until a GPU is free, through the real process and
// GPU plugins; the GPU is a fake nvidia-smi (this machine has none) whose answer the test changes.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createKernel, type ExecApi, type Kernel } from '@tether/core';
import processPlugin from '@tether/plugin-process';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import { eventually } from './support.js';

let kernel: Kernel;
let exec: ExecApi;
let dir: string;
let stateFile: string;
/** What the fake nvidia-smi reports: one GPU at this utilisation. */
const busy = (utilization: number) => writeFile(stateFile, `0, GPU-fake-0, NVIDIA Fake, 500, 81920, ${utilization}, 40\n`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tether-gpu-'));
  stateFile = join(dir, 'gpu.csv');
  const fake = join(dir, 'nvidia-smi');
  await writeFile(fake, `#!/bin/sh\ncase "$1" in --query-gpu=*) cat '${stateFile}' ;; esac\n`);
  await chmod(fake, 0o755);
  await busy(95);
  kernel = await createKernel({ plugins: [processPlugin, { plugin: gpuPlugin, config: { command: fake, cacheMs: 0 } }] });
  exec = kernel.machine().exec;
});
afterAll(async () => {
  await kernel.close();
  await rm(dir, { recursive: true, force: true });
});

const gate = { maxUtilizationPct: 10, pollMs: 50 };
const typesOf = async (id: string) => (await lastValueFrom(exec.follow(id).pipe(toArray()))).map((e) => e.type);

it('holds an execution queued while the GPU is busy and runs it once the GPU is free', async () => {
  await busy(95);
  const queued = await exec.start({ command: 'echo ran', gpuGate: gate });
  expect(queued).toMatchObject({ status: 'queued', pid: null });
  const probed = await kernel.machine().gpu.probe();
  expect(probed.gpus[0]).toMatchObject({ utilizationPct: 95 });
  expect((await exec.get(queued.id)).status).toBe('queued');
  await busy(3);
  const done = await exec.wait(queued.id);
  expect(done).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0, bytes: { stdout: 4 } });
  expect(await typesOf(queued.id)).toEqual(['ExecutionRequested', 'ExecutionStarted', 'OutputProduced', 'ExecutionExited']);
});

it('cancels a queued execution without ever starting it', async () => {
  await busy(95);
  const queued = await exec.start({ command: 'echo never', gpuGate: gate });
  await eventually(async () => (await exec.get(queued.id)).status === 'queued');
  const result = await exec.cancel(queued.id);
  expect(result).toMatchObject({ cancelled: true, state: { status: 'finished', endReason: 'cancelled', pid: null } });
  expect(await typesOf(queued.id)).toEqual(['ExecutionRequested', 'ExecutionFailed']);
});

it('fails to start with GATE_TIMEOUT when the GPU stays busy', async () => {
  await busy(95);
  const queued = await exec.start({ command: 'echo never', gpuGate: { ...gate, timeoutMs: 300 } });
  const done = await exec.wait(queued.id);
  expect(done).toMatchObject({ endReason: 'failed_to_start', error: { code: 'GATE_TIMEOUT' } });
});
