import { CliError, describeError, type ErrorJson } from './cliError.js';
import type { Machines } from './machines.js';

/**
 * `--machine a,b` and `--machine @label` address several machines at once (fan-out); a plain
 * name addresses one, as before. Labels come from the config (`labels: [gpu, big]`).
 */
export function isFanOut(spec: string): boolean {
  return spec.includes(',') || spec.startsWith('@');
}

/**
 * The machines `spec` names, in the order given (a label expands to its machines in config
 * order), each once. An unknown name or a label no machine has is `UNKNOWN_MACHINE`.
 */
export async function resolveTargets(machines: Machines, spec: string): Promise<string[]> {
  const config = await machines.config();
  const names = await machines.names();
  const targets: string[] = [];
  for (const part of spec.split(',').map((p) => p.trim())) {
    if (part === '') throw new CliError('USAGE', `--machine: an empty name in "${spec}"`, { hint: 'e.g. --machine gpu1,gpu2 or --machine @gpu' });
    if (part.startsWith('@')) {
      const label = part.slice(1);
      const labelled = config.machines.filter((m) => labelsOf(m.config).includes(label)).map((m) => m.config.name);
      if (labelled.length === 0) {
        const known = [...new Set(config.machines.flatMap((m) => labelsOf(m.config)))];
        throw new CliError('UNKNOWN_MACHINE', `unknown machine: no machine has the label ${label}`, {
          hint: known.length > 0 ? `labels in ${config.path}: ${known.map((l) => `@${l}`).join(', ')}` : `give machines labels in ${config.path}: "labels: [${label}]"`,
        });
      }
      targets.push(...labelled);
    } else {
      if (!names.includes(part)) await machines.configured(part); // throws UNKNOWN_MACHINE with the known names
      targets.push(part);
    }
  }
  return [...new Set(targets)];
}

/** A machine's labels from its config (`labels:` is validated by the config schema). */
export function labelsOf(config: Readonly<Record<string, unknown>>): string[] {
  const labels = config['labels'];
  return Array.isArray(labels) ? labels.filter((l): l is string => typeof l === 'string') : [];
}

/** One machine's failure as a fan-out line: `{"machine","error":{"code","message","hint"}}`, and the exit code it maps to. */
export function failureLine(machine: string, error: unknown): { line: { machine: string } & ErrorJson; exitCode: number } {
  const { json, exitCode } = describeError(error, { machine });
  return { line: { machine, ...json }, exitCode };
}

/**
 * Runs `each` on every target at once; returns the first non-zero exit code in target order
 * (0 when all succeeded). `each` resolves with its exit code; a throw is printed as a failure
 * line by `emit` and counts with its error's exit code.
 */
export async function forEachTarget(targets: readonly string[], each: (name: string) => Promise<number>, emit: (value: unknown) => void): Promise<number> {
  const codes = await Promise.all(
    targets.map(async (name) => {
      try {
        return await each(name);
      } catch (error) {
        const { line, exitCode } = failureLine(name, error);
        emit(line);
        return exitCode;
      }
    }),
  );
  return codes.find((c) => c !== 0) ?? 0;
}

/**
 * Runs `each` on every target at once and prints one line per target in target order once all
 * are done (`each` resolves with the line and its exit code; a throw becomes a failure line).
 * Returns the first non-zero exit code in target order.
 */
export async function resultPerTarget(targets: readonly string[], each: (name: string) => Promise<{ line: unknown; exitCode?: number }>, emit: (value: unknown) => void): Promise<number> {
  const results = await Promise.all(
    targets.map(async (name) => {
      try {
        const { line, exitCode = 0 } = await each(name);
        return { line, exitCode };
      } catch (error) {
        return failureLine(name, error);
      }
    }),
  );
  for (const { line } of results) emit(line);
  return results.find((r) => r.exitCode !== 0)?.exitCode ?? 0;
}
