import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTetherError } from '@tether/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeNvidiaSmi, fixture, isAlive, waitUntil } from '../test/fakeNvidiaSmi.js';
import { COMPUTE_APPS_QUERY_ARGS, GPU_QUERY_ARGS, NvidiaSmiProbe } from './nvidiaSmiProbe.js';

const DRIVER_FAILURE =
  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";

let fake: FakeNvidiaSmi;
let probes: NvidiaSmiProbe[];
const savedPath = process.env.PATH;

beforeEach(() => {
  fake = new FakeNvidiaSmi(fixture('h100x8.gpu.csv'), fixture('h100x8.apps.csv'));
  probes = [];
});
afterEach(() => {
  process.env.PATH = savedPath;
  for (const p of probes) p.close();
  fake.cleanup();
});

/** A probe on the fake, caching off unless asked. */
function probeOf(config: ConstructorParameters<typeof NvidiaSmiProbe>[0] = {}): NvidiaSmiProbe {
  const probe = new NvidiaSmiProbe({ command: fake.command, cacheMs: 0, ...config });
  probes.push(probe);
  return probe;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('NvidiaSmiProbe.probe through a fake nvidia-smi', () => {
  it('runs both queries with the exact arguments and reads 8× H100 with their processes', async () => {
    const result = await probeOf().probe();
    expect(fake.calls()).toEqual([GPU_QUERY_ARGS.join(' '), COMPUTE_APPS_QUERY_ARGS.join(' ')]);
    expect(GPU_QUERY_ARGS).toEqual([
      '--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu,temperature.gpu',
      '--format=csv,noheader,nounits',
    ]);
    expect(COMPUTE_APPS_QUERY_ARGS).toEqual(['--query-compute-apps=pid,gpu_uuid,used_memory', '--format=csv,noheader,nounits']);
    expect(result.available).toBe(true);
    expect(result.reason).toBeUndefined();
    expect(result.warnings).toBeUndefined();
    expect(result.gpus).toHaveLength(8);
    expect(result.processes).toHaveLength(6);
    expect(result.processes[0]).toEqual({ pid: 2291817, gpuUuid: result.gpus[0]!.uuid, usedMemoryMiB: 72442 });
    expect(result.probedAt).toBeGreaterThan(0);
  });

  it('finds nvidia-smi on PATH by default', async () => {
    fake.setGpu(fixture('a100-single.gpu.csv'));
    fake.setApps(fixture('no-running-processes.apps.txt'));
    process.env.PATH = `${fake.dir}:${savedPath ?? ''}`;
    const probe = new NvidiaSmiProbe({ cacheMs: 0 });
    probes.push(probe);
    expect(probe.config.command).toBe('nvidia-smi');
    const result = await probe.probe();
    expect(result).toMatchObject({ available: true, processes: [] });
    expect(result.gpus.map((g) => g.name)).toEqual(['NVIDIA A100-SXM4-80GB']);
  });

  it('reads a GH200 whose memory is [N/A] as null, and empty compute-apps output as no processes', async () => {
    fake.setGpu(fixture('gh200.gpu.csv'));
    fake.setApps(fixture('no-apps.apps.csv'));
    const result = await probeOf().probe();
    expect(result.available).toBe(true);
    expect(result.gpus[0]).toMatchObject({ memoryUsedMiB: null, memoryTotalMiB: null, utilizationPct: 0 });
    expect(result.processes).toEqual([]);
  });

  it('stays available with the good GPUs and reports skipped lines as warnings', async () => {
    fake.setGpu(fixture('gpu-lost.gpu.csv'));
    fake.setApps('1234, GPU-f4a5b6c7-d8e9-4fa0-b1c2-d3e4f5a6b7c8, 100\nsomething odd\n');
    const result = await probeOf().probe();
    expect(result.available).toBe(true);
    expect(result.gpus).toHaveLength(1);
    expect(result.processes).toHaveLength(1);
    expect(result.warnings).toEqual([
      expect.stringMatching(/^--query-gpu line 2: .*Unable to determine the device handle/),
      expect.stringMatching(/^--query-compute-apps line 2: .*something odd/),
    ]);
  });

  it('answers available: false when nvidia-smi is not on PATH', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'tether-empty-path-'));
    try {
      process.env.PATH = empty;
      const probe = new NvidiaSmiProbe();
      probes.push(probe);
      expect(await probe.probe()).toEqual({
        available: false,
        reason: 'nvidia-smi was not found on PATH',
        gpus: [],
        processes: [],
        probedAt: expect.any(Number),
      });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('answers available: false for a missing path and for a file that is not executable', async () => {
    const missing = await probeOf({ command: join(fake.dir, 'no-such-nvidia-smi') }).probe();
    expect(missing).toMatchObject({ available: false, reason: `${join(fake.dir, 'no-such-nvidia-smi')} was not found` });
    const plain = join(fake.dir, 'not-executable');
    writeFileSync(plain, '#!/bin/sh\n', { mode: 0o644 });
    const denied = await probeOf({ command: plain }).probe();
    expect(denied.available).toBe(false);
    expect(denied.reason).toMatch(/could not be started \(EACCES\)/);
  });

  it('carries the first line of the driver-communication failure', async () => {
    fake.setMode('driver-failure');
    const result = await probeOf().probe();
    expect(result).toMatchObject({ available: false, gpus: [], processes: [] });
    expect(result.reason).toBe(`${fake.command} exited with code 9: ${DRIVER_FAILURE}`);
    expect(fake.calls()).toHaveLength(1);
  });

  it('falls back to stderr for the reason of a non-zero exit', async () => {
    fake.setMode('stderr-failure');
    const result = await probeOf().probe();
    expect(result.reason).toBe(`${fake.command} exited with code 18: Failed to initialize NVML: Driver/library version mismatch`);
  });

  it('kills a hung nvidia-smi and its process group after timeoutMs', async () => {
    fake.setMode('hang');
    const result = await probeOf({ timeoutMs: 1000 }).probe();
    expect(result).toMatchObject({ available: false, reason: `${fake.command} hung for 1000 ms and was killed` });
    const pids = fake.hungPids();
    expect(pids).toBeDefined();
    await waitUntil(() => !isAlive(pids!.sh) && !isAlive(pids!.sleep), 'the hung script and its sleep to be gone');
  });

  it('reports a hang of the compute-apps query', async () => {
    fake.setMode('hang-apps');
    const result = await probeOf({ timeoutMs: 300 }).probe();
    expect(result.available).toBe(false);
    expect(result.reason).toBe(`listing compute processes failed: ${fake.command} hung for 300 ms and was killed`);
    expect(result.gpus).toEqual([]);
  });

  it('stops reading at maxOutputBytes', async () => {
    fake.setMode('flood');
    const result = await probeOf({ maxOutputBytes: 64 * 1024 }).probe();
    expect(result).toMatchObject({ available: false, reason: `${fake.command} printed more than 65536 bytes and was killed` });
  });

  it('answers available: false for unparsable or empty output', async () => {
    fake.setGpu('this is not csv\n');
    const garbage = await probeOf().probe();
    expect(garbage.available).toBe(false);
    expect(garbage.reason).toMatch(/^could not parse .* output: line 1: expected 7 comma-separated fields, found 1 \("this is not csv"\)$/);
    fake.setGpu('');
    expect((await probeOf().probe()).reason).toBe(`${fake.command} listed no GPUs`);
  });

  it('rejects an invalid config with INVALID_ARGUMENT', () => {
    expect(() => new NvidiaSmiProbe({ timeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new NvidiaSmiProbe({ command: '' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new NvidiaSmiProbe({ timeoutMS: 10 } as never)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('NvidiaSmiProbe caching', () => {
  it('shares one in-flight probe between concurrent callers and reuses a good answer within cacheMs', async () => {
    const probe = probeOf({ cacheMs: 60_000 });
    const answers = await Promise.all([probe.probe(), probe.probe(), probe.probe(), probe.probe()]);
    expect(fake.calls()).toHaveLength(2);
    expect(new Set(answers).size).toBe(1);
    fake.setMode('driver-failure');
    const again = await probe.probe();
    expect(again).toBe(answers[0]);
    expect(fake.calls()).toHaveLength(2);
  });

  it('does not cache failures, and does not serve an old good answer after the window', async () => {
    const probe = probeOf({ cacheMs: 0 });
    fake.setMode('driver-failure');
    expect((await probe.probe()).available).toBe(false);
    fake.setMode('ok');
    expect((await probe.probe()).available).toBe(true);
    fake.setMode('driver-failure');
    expect((await probe.probe()).available).toBe(false);
    const concurrent = await Promise.all([probe.probe(), probe.probe()]);
    expect(concurrent[0]).toBe(concurrent[1]);
    expect(fake.calls()).toHaveLength(1 + 2 + 1 + 1);
  });

  it('close() kills a running nvidia-smi and answers unavailable afterwards', async () => {
    fake.setMode('hang');
    const probe = probeOf({ timeoutMs: 60_000 });
    const running = probe.probe();
    await waitUntil(() => fake.hungPids() !== undefined, 'the fake to start hanging');
    probe.close();
    expect(await running).toMatchObject({ available: false, reason: 'the GPU probe was closed while nvidia-smi ran' });
    const pids = fake.hungPids()!;
    await waitUntil(() => !isAlive(pids.sh) && !isAlive(pids.sleep), 'the hung script and its sleep to be gone');
    expect(await probe.probe()).toMatchObject({ available: false, reason: 'the GPU probe is closed' });
  });
});

describe('NvidiaSmiProbe.waitFree through a fake nvidia-smi', () => {
  const busyGpu = '0, GPU-11111111-2222-4333-8444-555555555555, NVIDIA A100-SXM4-80GB, 60211, 81920, 100, 71\n';
  const busyApps = '777, GPU-11111111-2222-4333-8444-555555555555, 60200\n';
  const idleGpu = '0, GPU-11111111-2222-4333-8444-555555555555, NVIDIA A100-SXM4-80GB, 3, 81920, 0, 33\n';

  it('opens when the GPU becomes free', async () => {
    fake.setGpu(busyGpu);
    fake.setApps(busyApps);
    const waiting = probeOf().waitFree({ pollMs: 50, timeoutMs: 30_000 });
    await waitUntil(() => fake.gpuQueries() >= 2, 'the gate to have seen the busy GPU');
    fake.setApps('No running processes found\n');
    fake.setGpu(idleGpu);
    const { gpus, waitedMs } = await waiting;
    expect(gpus).toEqual([expect.objectContaining({ index: 0, utilizationPct: 0, memoryUsedMiB: 3 })]);
    expect(waitedMs).toBeGreaterThanOrEqual(0);
  });

  it('never opens while nvidia-smi fails, and rejects GATE_TIMEOUT', async () => {
    fake.setMode('driver-failure');
    const error = await rejection(probeOf().waitFree({ pollMs: 50, timeoutMs: 300 }));
    expect(isTetherError(error, 'GATE_TIMEOUT')).toBe(true);
    expect((error as Error).message).toContain(DRIVER_FAILURE);
  });

  it('rejects ABORTED when the signal aborts', async () => {
    fake.setGpu(busyGpu);
    const controller = new AbortController();
    const waiting = rejection(probeOf().waitFree({ pollMs: 50 }, controller.signal));
    await waitUntil(() => fake.gpuQueries() >= 2, 'two polls');
    controller.abort();
    expect(isTetherError(await waiting, 'ABORTED')).toBe(true);
  });
});

describe('nothing is left behind', () => {
  const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

  it('a Node process exits on its own after the gate resolves, aborts and times out, and after a probe timeout', async () => {
    expect(existsSync(dist), 'build the package first: npx tsc -b plugins/gpu-nvidia').toBe(true);
    fake.setGpu('0, GPU-a, Busy GPU, 70000, 81559, 97, 70\n');
    const idle = new FakeNvidiaSmi(fixture('a100-single.gpu.csv'), '');
    const hung = new FakeNvidiaSmi();
    hung.setMode('hang');
    const script = join(fake.dir, 'gate-child.mjs');
    // Long pollMs/timeoutMs: a poll or deadline timer left armed would keep the child alive.
    writeFileSync(
      script,
      `const { NvidiaSmiProbe } = await import(${JSON.stringify(dist)});
const [busyCmd, idleCmd, hungCmd] = process.argv.slice(2);
const out = {};
const busy = new NvidiaSmiProbe({ command: busyCmd, cacheMs: 0 });
out.opened = (await new NvidiaSmiProbe({ command: idleCmd }).waitFree({ pollMs: 600000, timeoutMs: 600000 })).gpus.length;
const controller = new AbortController();
const aborted = busy.waitFree({ pollMs: 600000, timeoutMs: 600000 }, controller.signal).catch((e) => e.code);
setTimeout(() => controller.abort(), 200);
out.aborted = await aborted;
out.timedOut = await busy.waitFree({ pollMs: 600000, timeoutMs: 300 }).catch((e) => e.code);
out.hung = (await new NvidiaSmiProbe({ command: hungCmd, timeoutMs: 500 }).probe()).reason;
process.stdout.write(JSON.stringify(out));
`,
    );
    try {
      const child = spawn(process.execPath, [script, fake.command, idle.command, hung.command], { stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await waitUntil(() => child.exitCode !== null, 'the child to exit by itself', 20_000).catch((error: unknown) => {
        child.kill('SIGKILL');
        throw error;
      });
      expect(await exited).toBe(0);
      expect(JSON.parse(stdout)).toEqual({
        opened: 1,
        aborted: 'ABORTED',
        timedOut: 'GATE_TIMEOUT',
        hung: `${hung.command} hung for 500 ms and was killed`,
      });
    } finally {
      idle.cleanup();
      hung.cleanup();
    }
  });
});
