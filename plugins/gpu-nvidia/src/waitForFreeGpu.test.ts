import { GpuGateOptions, isTetherError, type GpuProbeResult } from '@tether/core';
import { describe, expect, it } from 'vitest';
import { fixture, waitUntil } from '../test/fakeNvidiaSmi.js';
import { parseComputeAppsCsv, parseGpuCsv } from './parseGpuCsv.js';
import { assessGpus, freeGpus, waitForFreeGpu } from './waitForFreeGpu.js';

function result(gpuCsv: string, appsCsv = ''): GpuProbeResult {
  return { available: true, gpus: parseGpuCsv(gpuCsv).gpus, processes: parseComputeAppsCsv(appsCsv).processes, probedAt: Date.now() };
}
const unavailable: GpuProbeResult = { available: false, reason: 'nvidia-smi was not found on PATH', gpus: [], processes: [], probedAt: 0 };
const busy = result('0, GPU-a, Busy GPU, 70000, 81559, 97, 70', '42, GPU-a, 69990');
const idle = result('0, GPU-a, Busy GPU, 2, 81559, 0, 35');
const defaults = GpuGateOptions.parse({});

describe('assessGpus', () => {
  const h100 = result(fixture('h100x8.gpu.csv'), fixture('h100x8.apps.csv'));

  it('frees only idle GPUs without compute processes, by default thresholds', () => {
    expect(freeGpus(h100).map((g) => g.index)).toEqual([4, 5]);
    const { busy: why } = assessGpus(h100, defaults);
    expect(why).toContain('GPU 0: utilisation 98% > 10%, memory used 72451 MiB > 1000 MiB, 1 compute process');
    expect(why).toContain('GPU 7: 1 compute process');
  });

  it('ignores processes when requireNoProcesses is false, and honours custom thresholds', () => {
    expect(freeGpus(h100, { requireNoProcesses: false }).map((g) => g.index)).toEqual([4, 5, 7]);
    expect(freeGpus(h100, { requireNoProcesses: false, maxUtilizationPct: 50, maxMemoryUsedMiB: 20_000 }).map((g) => g.index)).toEqual([
      4, 5, 6, 7,
    ]);
    expect(freeGpus(h100, { maxUtilizationPct: 0, maxMemoryUsedMiB: 0 }).map((g) => g.index)).toEqual([4]);
  });

  it('considers only gpuIndexes when given', () => {
    expect(freeGpus(h100, { gpuIndexes: [5, 6] }).map((g) => g.index)).toEqual([5]);
    expect(freeGpus(h100, { gpuIndexes: [6, 7] })).toEqual([]);
    expect(assessGpus(h100, { ...defaults, gpuIndexes: [9] }).busy).toEqual(['no GPU with index 9']);
  });

  it('ignores a metric the driver does not report (unified memory), but not the process check', () => {
    const gh200 = fixture('gh200.gpu.csv');
    expect(freeGpus(result(gh200, fixture('gh200.apps.csv')))).toEqual([]);
    expect(freeGpus(result(gh200, fixture('no-apps.apps.csv')), { maxMemoryUsedMiB: 0 }).map((g) => g.name)).toEqual(['NVIDIA GH200 480GB']);
    expect(freeGpus(result(fixture('not-supported.gpu.csv'))).map((g) => g.index)).toEqual([0, 1]);
  });

  it('never opens on available: false', () => {
    expect(assessGpus(unavailable, defaults)).toEqual({ free: [], busy: ['nvidia-smi unavailable: nvidia-smi was not found on PATH'] });
  });

  it('rejects invalid gate options', () => {
    expect(() => freeGpus(idle, { maxUtilizationPct: 101 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

/** A probe that answers from a script of results (the last one repeats), counting calls. */
function scripted(...answers: Array<GpuProbeResult | Error | 'hang'>) {
  let calls = 0;
  const probe = (): Promise<GpuProbeResult> => {
    const answer = answers[Math.min(calls, answers.length - 1)]!;
    calls++;
    if (answer === 'hang') return new Promise(() => {});
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  };
  return { probe, calls: () => calls };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('waitForFreeGpu', () => {
  it('resolves at once when a GPU is already free', async () => {
    const { probe, calls } = scripted(idle);
    const { gpus, waitedMs } = await waitForFreeGpu(probe, { pollMs: 50 });
    expect(gpus.map((g) => g.index)).toEqual([0]);
    expect(waitedMs).toBeGreaterThanOrEqual(0);
    expect(calls()).toBe(1);
  });

  it('keeps polling until a GPU becomes free, through unavailable answers and throwing probes', async () => {
    const { probe, calls } = scripted(busy, unavailable, new Error('boom'), busy, idle);
    const { gpus } = await waitForFreeGpu(probe, { pollMs: 50, timeoutMs: 30_000 });
    expect(gpus).toEqual(idle.gpus);
    expect(calls()).toBe(5);
  });

  it('rejects GATE_TIMEOUT, saying why the last probe was not free', async () => {
    const { probe } = scripted(busy);
    const error = await rejection(waitForFreeGpu(probe, { pollMs: 50, timeoutMs: 150 }));
    expect(isTetherError(error, 'GATE_TIMEOUT')).toBe(true);
    expect((error as Error).message).toMatch(/within 150 ms \(GPU 0: utilisation 97% > 10%/);
  });

  it('times out even while a probe hangs', async () => {
    const { probe } = scripted('hang');
    const error = await rejection(waitForFreeGpu(probe, { pollMs: 50, timeoutMs: 100 }));
    expect(isTetherError(error, 'GATE_TIMEOUT')).toBe(true);
    expect((error as Error).message).toContain('no probe finished yet');
  });

  it('never opens while nvidia-smi is unavailable', async () => {
    const { probe, calls } = scripted(unavailable);
    const error = await rejection(waitForFreeGpu(probe, { pollMs: 50, timeoutMs: 200 }));
    expect((error as Error).message).toContain('nvidia-smi unavailable: nvidia-smi was not found on PATH');
    expect(calls()).toBeGreaterThanOrEqual(1);
  });

  it.each([
    ['597h', 597 * 3_600_000],
    ['25d', 25 * 86_400_000],
  ])('a %s gate timeout (beyond 2^31 ms) does not fire early: the gate keeps polling', async (_name, timeoutMs) => {
    const { probe, calls } = scripted(busy);
    const controller = new AbortController();
    let settled = false;
    const waiting = rejection(waitForFreeGpu(probe, { pollMs: 50, timeoutMs }, controller.signal)).finally(() => (settled = true));
    // A timer clamped to 1 ms would have rejected GATE_TIMEOUT long before the third probe.
    await waitUntil(() => calls() >= 3, 'three probes');
    expect(settled).toBe(false);
    controller.abort(new Error('done observing'));
    expect(isTetherError(await waiting, 'ABORTED')).toBe(true);
  });

  it('rejects ABORTED when the signal aborts, keeping the reason as cause', async () => {
    const { probe, calls } = scripted(busy);
    const controller = new AbortController();
    const waiting = rejection(waitForFreeGpu(probe, { pollMs: 50 }, controller.signal));
    await waitUntil(() => calls() >= 2, 'two probes');
    controller.abort(new Error('user cancelled'));
    const error = await waiting;
    expect(isTetherError(error, 'ABORTED')).toBe(true);
    expect((error as Error).cause).toEqual(new Error('user cancelled'));
  });

  it('rejects ABORTED without probing when the signal is already aborted', async () => {
    const { probe, calls } = scripted(idle);
    const error = await rejection(waitForFreeGpu(probe, {}, AbortSignal.abort()));
    expect(isTetherError(error, 'ABORTED')).toBe(true);
    expect(calls()).toBe(0);
  });

  it('rejects INVALID_ARGUMENT for bad options without probing', async () => {
    const { probe, calls } = scripted(idle);
    const error = await rejection(waitForFreeGpu(probe, { pollMs: 1 }));
    expect(isTetherError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect(calls()).toBe(0);
  });
});
