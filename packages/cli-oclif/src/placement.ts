import type { ExecStartParams, ExecutionState } from '@tether/core';
import { CliError } from './cliError.js';
import { parseDuration } from './duration.js';
import { specFromFlags, specTarget, type ExecSpecFlagValues } from './execFlags.js';
import type { Machines } from './machines.js';

/**
 * `exec start --machine @label --gpu-gate`: waits on every candidate's GPU gate at once and
 * starts the execution on the first machine whose gate opens (the others' waits are abandoned).
 * The execution keeps its gate, so the chosen daemon checks the GPU once more before it runs it
 * (another client may have taken the GPU in between; it then stays queued there).
 * Fails with the first candidate's error when none can be used (GATE_TIMEOUT when all timed out).
 */
export async function placeOnFreeGpu(
  machines: Machines,
  targets: readonly string[],
  flags: ExecSpecFlagValues,
  extra: Partial<ExecStartParams>,
): Promise<{ machine: string; state: ExecutionState }> {
  const gate = {
    maxUtilizationPct: flags['gpu-max-util'],
    maxMemoryUsedMiB: flags['gpu-max-mem-mib'],
    ...(flags['gpu-gate-timeout'] !== undefined ? { timeoutMs: parseDuration(flags['gpu-gate-timeout'], 'gpu-gate-timeout') } : {}),
  };
  const abort = new AbortController();
  const waits = targets.map(async (name) => {
    const opened = await machines.open(name);
    await opened.machine.gpu.waitFree(gate, abort.signal);
    return opened;
  });
  let winner;
  try {
    winner = await Promise.any(waits);
  } catch (error) {
    const errors = error instanceof AggregateError ? error.errors : [error];
    const all = errors.every((e: { code?: string }) => e?.code === 'GATE_TIMEOUT');
    if (all) throw new CliError('GATE_TIMEOUT', `no GPU became free on ${targets.join(', ')} in time`, { hint: 'raise --gpu-gate-timeout, or check gpu status --machine on them' });
    throw errors.find((e: { code?: string }) => e?.code !== 'GATE_TIMEOUT') ?? errors[0];
  } finally {
    abort.abort();
  }
  const spec = await specFromFlags(flags, specTarget(winner));
  return { machine: winner.name, state: await winner.machine.exec.start({ ...spec, ...extra }) };
}
