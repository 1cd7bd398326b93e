import { GpuGateOptions, TetherError, setLongTimeout, type GpuInfo, type LongTimer, type GpuProbeResult, type GpuWaitResult } from '@tether/core';
import type { z } from 'zod';

/** Gate options as a caller may write them: thresholds left out take their defaults. */
export type GpuGateInput = z.input<typeof GpuGateOptions>;

export interface GpuAssessment {
  /** GPUs that pass every threshold of the gate, in probe order. */
  readonly free: GpuInfo[];
  /** One line per GPU considered but not free, or why no GPU could be considered. */
  readonly busy: string[];
}

/**
 * Which GPUs of a probe result are free by the gate's thresholds. Pure.
 *
 * - `available: false` never yields a free GPU.
 * - Only GPUs listed in `gpuIndexes` are considered, when it is given.
 * - A GPU is free when utilisation ≤ `maxUtilizationPct`, memory used ≤ `maxMemoryUsedMiB` and,
 *   with `requireNoProcesses`, no compute process runs on its uuid.
 * - A metric the driver does not report (`null`) is ignored for its threshold: unified-memory
 *   GPUs (GH200, GB10) report memory as `[N/A]` and would otherwise never be free. On such a GPU
 *   the process check is what remains; keep `requireNoProcesses` on.
 */
export function assessGpus(result: GpuProbeResult, gate: GpuGateOptions): GpuAssessment {
  if (!result.available) return { free: [], busy: [`nvidia-smi unavailable: ${result.reason ?? 'no reason given'}`] };
  const wanted = gate.gpuIndexes;
  const candidates = wanted === undefined ? result.gpus : result.gpus.filter((gpu) => wanted.includes(gpu.index));
  if (candidates.length === 0) {
    return { free: [], busy: [wanted === undefined ? 'no GPUs found' : `no GPU with index ${wanted.join(', ')}`] };
  }
  const free: GpuInfo[] = [];
  const busy: string[] = [];
  for (const gpu of candidates) {
    const why: string[] = [];
    if (gpu.utilizationPct !== null && gpu.utilizationPct > gate.maxUtilizationPct) {
      why.push(`utilisation ${gpu.utilizationPct}% > ${gate.maxUtilizationPct}%`);
    }
    if (gpu.memoryUsedMiB !== null && gpu.memoryUsedMiB > gate.maxMemoryUsedMiB) {
      why.push(`memory used ${gpu.memoryUsedMiB} MiB > ${gate.maxMemoryUsedMiB} MiB`);
    }
    if (gate.requireNoProcesses) {
      const running = result.processes.filter((p) => p.gpuUuid === gpu.uuid).length;
      if (running > 0) why.push(`${running} compute process${running === 1 ? '' : 'es'}`);
    }
    if (why.length === 0) free.push(gpu);
    else busy.push(`GPU ${gpu.index}: ${why.join(', ')}`);
  }
  return { free, busy };
}

/** The GPUs of `result` that are free by `gate` (see `assessGpus`). */
export function freeGpus(result: GpuProbeResult, gate: GpuGateInput = {}): GpuInfo[] {
  return assessGpus(result, parseGate(gate)).free;
}

/**
 * Poll `probe` until a GPU is free by the gate (see `assessGpus`), waiting `gate.pollMs`
 * between the end of one probe and the start of the next.
 *
 * Resolves `{ waitedMs, gpus }` with the free GPUs. Rejects with `INVALID_ARGUMENT` for bad gate
 * options, `GATE_TIMEOUT` once `gate.timeoutMs` has passed (even while a probe is still running;
 * the message says why the last probe was not free), `ABORTED` when `signal` aborts. When it
 * settles it leaves no timer or listener behind; a probe still running finishes on its own.
 */
export function waitForFreeGpu(
  probe: () => Promise<GpuProbeResult>,
  gateInput: GpuGateInput,
  signal?: AbortSignal,
): Promise<GpuWaitResult> {
  let gate: GpuGateOptions;
  try {
    gate = parseGate(gateInput);
  } catch (error) {
    return Promise.reject(error);
  }
  if (signal?.aborted) return Promise.reject(aborted(signal));

  return new Promise<GpuWaitResult>((resolve, reject) => {
    const started = performance.now();
    let settled = false;
    let pollTimer: LongTimer | undefined;
    let lastVerdict = 'no probe finished yet';

    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      pollTimer?.clear();
      deadline?.clear();
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = (): void => settle(() => reject(aborted(signal)));
    const deadline =
      gate.timeoutMs === undefined
        ? undefined
        : // Not setTimeout: a gate timeout over 2^31 ms (about 24.8 days) would fire at once.
          setLongTimeout(() => {
            const timeoutMs = gate.timeoutMs;
            settle(() =>
              reject(
                new TetherError('GATE_TIMEOUT', `no GPU became free within ${timeoutMs} ms (${lastVerdict})`, {
                  timeoutMs,
                  lastProbe: lastVerdict,
                }),
              ),
            );
          }, gate.timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });

    const poll = async (): Promise<void> => {
      let result: GpuProbeResult;
      try {
        result = await probe();
      } catch (error) {
        // GpuProbe.probe() must not throw, but a third-party one might: treat it as unavailable.
        result = { available: false, reason: describe(error), gpus: [], processes: [], probedAt: Date.now() };
      }
      if (settled) return;
      const { free, busy } = assessGpus(result, gate);
      if (free.length > 0) {
        settle(() => resolve({ waitedMs: Math.round(performance.now() - started), gpus: free }));
        return;
      }
      lastVerdict = busy.join('; ');
      pollTimer = setLongTimeout(() => void poll(), gate.pollMs);
    };
    void poll();
  });
}

function parseGate(input: GpuGateInput): GpuGateOptions {
  const parsed = GpuGateOptions.safeParse(input);
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new TetherError('INVALID_ARGUMENT', `invalid GPU gate options: ${where}`);
  }
  return parsed.data;
}

function aborted(signal: AbortSignal | undefined): TetherError {
  return new TetherError('ABORTED', 'waiting for a free GPU was aborted', {}, { cause: signal?.reason });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
