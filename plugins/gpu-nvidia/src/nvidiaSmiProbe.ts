import { TetherError, type GpuProbe, type GpuProbeResult, type GpuWaitResult } from '@tether/core';
import { NvidiaSmiConfig, type NvidiaSmiConfigInput } from './nvidiaSmiConfig.js';
import {
  COMPUTE_APPS_QUERY_FIELDS,
  GPU_QUERY_FIELDS,
  formatParseIssue,
  parseComputeAppsCsv,
  parseGpuCsv,
} from './parseGpuCsv.js';
import { runCommand } from './runCommand.js';
import { waitForFreeGpu, type GpuGateInput } from './waitForFreeGpu.js';

/** Arguments of the GPU query. */
export const GPU_QUERY_ARGS: readonly string[] = [`--query-gpu=${GPU_QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];
/** Arguments of the compute-process query. */
export const COMPUTE_APPS_QUERY_ARGS: readonly string[] = [
  `--query-compute-apps=${COMPUTE_APPS_QUERY_FIELDS.join(',')}`,
  '--format=csv,noheader,nounits',
];

/** A probe answer, plus what was skipped while reading nvidia-smi's output. */
export interface NvidiaProbeResult extends GpuProbeResult {
  /**
   * Present when the probe succeeded but some output lines were skipped or some values were
   * unreadable (e.g. "Unable to determine the device handle for GPU…" for a GPU that fell off
   * the bus). One line each, naming the query, the line number and the problem.
   */
  readonly warnings?: readonly string[];
}

/**
 * `GpuProbe` over `nvidia-smi`.
 *
 * `probe()` runs the GPU query, then (if it worked) the compute-process query, each without a
 * shell and in its own process group, killed with SIGKILL after `timeoutMs`. It never throws:
 * a missing nvidia-smi, a driver that does not answer, a hang, a non-zero exit, unparsable
 * output, or a failed process query all give `available: false` with a one-line `reason`.
 *
 * Caching: a good answer (`available: true`) is reused for `cacheMs` from the moment its probe
 * started (`probedAt` keeps that time). Failures are not cached and a failure is never papered
 * over with an older good answer: once the cache window has passed, the next caller sees the
 * failure, so a dead driver shows at once and a gate never opens on stale numbers. Concurrent
 * callers share the probe in flight, so at most one nvidia-smi runs at a time per probe.
 *
 * @example
 * const gpu = new NvidiaSmiProbe({ timeoutMs: 3000 });
 * const { available, gpus, reason } = await gpu.probe();
 * const { gpus: free } = await gpu.waitFree({ maxUtilizationPct: 5, timeoutMs: 600_000 });
 */
export class NvidiaSmiProbe implements GpuProbe {
  /** The validated config, defaults applied. */
  readonly config: NvidiaSmiConfig;
  #cache: { readonly result: NvidiaProbeResult; readonly startedAt: number } | undefined;
  #inFlight: Promise<NvidiaProbeResult> | undefined;
  readonly #closing = new AbortController();

  /** @throws TetherError `INVALID_ARGUMENT` when `config` fails `NvidiaSmiConfig`. */
  constructor(config: NvidiaSmiConfigInput = {}) {
    const parsed = NvidiaSmiConfig.safeParse(config);
    if (!parsed.success) {
      const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new TetherError('INVALID_ARGUMENT', `invalid nvidia-smi probe config: ${where}`);
    }
    this.config = parsed.data;
  }

  probe(): Promise<NvidiaProbeResult> {
    if (this.#closing.signal.aborted) return Promise.resolve(unavailable('the GPU probe is closed', Date.now()));
    const cached = this.#cache;
    if (cached !== undefined && performance.now() - cached.startedAt < this.config.cacheMs) return Promise.resolve(cached.result);
    this.#inFlight ??= this.#run().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /**
   * Wait until a GPU is free by `gate` (see `assessGpus` for the rules, including how metrics
   * the driver does not report are treated). Probes go through `probe()`, so with a `pollMs`
   * below `cacheMs` some polls see the cached answer.
   */
  waitFree(gate: GpuGateInput, signal?: AbortSignal): Promise<GpuWaitResult> {
    return waitForFreeGpu(() => this.probe(), gate, signal);
  }

  /** Kill a running nvidia-smi and answer `available: false` from now on. Idempotent. */
  close(): void {
    this.#closing.abort();
    this.#cache = undefined;
  }

  async #run(): Promise<NvidiaProbeResult> {
    const probedAt = Date.now();
    const startedAt = performance.now();
    try {
      const gpuRun = await this.#nvidiaSmi(GPU_QUERY_ARGS);
      if ('failure' in gpuRun) return unavailable(gpuRun.failure, probedAt);
      const gpuParse = parseGpuCsv(gpuRun.stdout);
      if (gpuParse.gpus.length === 0) {
        const first = gpuParse.issues[0];
        const reason =
          first === undefined
            ? `${this.config.command} listed no GPUs`
            : `could not parse ${this.config.command} output: ${formatParseIssue(first)}`;
        return unavailable(reason, probedAt);
      }
      const appsRun = await this.#nvidiaSmi(COMPUTE_APPS_QUERY_ARGS);
      // Without the process list a gate could open on a GPU that is in use: report unavailable.
      if ('failure' in appsRun) return unavailable(`listing compute processes failed: ${appsRun.failure}`, probedAt);
      const appsParse = parseComputeAppsCsv(appsRun.stdout);
      const warnings = [
        ...gpuParse.issues.map((i) => `--query-gpu ${formatParseIssue(i)}`),
        ...appsParse.issues.map((i) => `--query-compute-apps ${formatParseIssue(i)}`),
      ];
      const result: NvidiaProbeResult = Object.freeze({
        available: true,
        gpus: Object.freeze(gpuParse.gpus.map((g) => Object.freeze(g))),
        processes: Object.freeze(appsParse.processes.map((p) => Object.freeze(p))),
        probedAt,
        ...(warnings.length > 0 ? { warnings: Object.freeze(warnings) } : {}),
      });
      if (!this.#closing.signal.aborted) this.#cache = { result, startedAt };
      return result;
    } catch (error) {
      return unavailable(`unexpected error while probing: ${error instanceof Error ? error.message : String(error)}`, probedAt);
    }
  }

  async #nvidiaSmi(args: readonly string[]): Promise<{ stdout: string } | { failure: string }> {
    const { command, timeoutMs, maxOutputBytes } = this.config;
    const outcome = await runCommand(command, args, { timeoutMs, maxOutputBytes, signal: this.#closing.signal });
    switch (outcome.kind) {
      case 'exited':
        if (outcome.exitCode === 0) return { stdout: outcome.stdout };
        {
          const said = firstLine(outcome.stdout) ?? firstLine(outcome.stderr);
          return { failure: `${command} exited with code ${outcome.exitCode}${said === undefined ? '' : `: ${said}`}` };
        }
      case 'signaled':
        return { failure: `${command} was killed by ${outcome.signal}` };
      case 'spawn-failed':
        if (outcome.errno === 'ENOENT') {
          return { failure: command.includes('/') ? `${command} was not found` : `${command} was not found on PATH` };
        }
        return { failure: `${command} could not be started (${outcome.errno}): ${outcome.message}` };
      case 'timed-out':
        return { failure: `${command} hung for ${timeoutMs} ms and was killed` };
      case 'too-large':
        return { failure: `${command} printed more than ${maxOutputBytes} bytes and was killed` };
      case 'aborted':
        return { failure: 'the GPU probe was closed while nvidia-smi ran' };
    }
  }
}

function unavailable(reason: string, probedAt: number): NvidiaProbeResult {
  return Object.freeze({ available: false, reason, gpus: Object.freeze([]), processes: Object.freeze([]), probedAt });
}

/** nvidia-smi explains a failure in its first line ("NVIDIA-SMI has failed because…"). */
function firstLine(text: string): string | undefined {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '');
  return line === undefined ? undefined : line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
