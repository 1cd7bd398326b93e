import { CliError } from './cliError.js';

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The longest duration a flag accepts: 365 days (timers past it are refused, not clamped). */
export const MAX_DURATION_MS = 365 * UNITS['d']!;

/**
 * Parses a duration flag: `500ms`, `10s`, `5m`, `2h`, `1d`, `1m30s`, or a bare number of
 * milliseconds, at most 365 days ({@link MAX_DURATION_MS}). Zero is refused unless `allowZero`
 * (a timeout of 0 would give up before starting). Fails with a usage error naming the flag.
 */
export function parseDuration(text: string, flag: string, options: { allowZero?: boolean } = {}): number {
  const trimmed = text.trim();
  const parts = /^\d+$/.test(trimmed) ? [`${trimmed}ms`] : /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(trimmed) ? trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g) : null;
  if (!parts) {
    throw new CliError('INVALID_ARGUMENT', `--${flag}: invalid duration "${text}"`, {
      hint: 'write a duration as a number and a unit: 500ms, 10s, 5m, 2h (or 1m30s)',
    });
  }
  let total = 0;
  for (const part of parts) {
    const [, value, unit] = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(part)!;
    total += Number(value) * UNITS[unit!]!;
  }
  if (!(total <= MAX_DURATION_MS)) {
    throw new CliError('INVALID_ARGUMENT', `--${flag}: duration "${text}" is too long`, {
      hint: `the longest duration is 365d (${MAX_DURATION_MS} ms)`,
    });
  }
  const ms = Math.round(total);
  if (ms === 0 && !options.allowZero) {
    throw new CliError('INVALID_ARGUMENT', `--${flag}: the duration must be more than 0`, {
      hint: `give a positive duration, e.g. --${flag} 8s`,
    });
  }
  return ms;
}

/**
 * Parses a time flag: RFC 3339 (`2024-05-01T12:00:00Z`) or a duration meaning that long ago
 * (`10m` → ten minutes before `now`). Returns epoch ms.
 */
export function parseTime(text: string, flag: string, now: number = Date.now()): number {
  const trimmed = text.trim();
  if (/^\d{4}-\d{2}-\d{2}/.test(trimmed)) {
    const ms = Date.parse(trimmed);
    if (Number.isNaN(ms)) {
      throw new CliError('INVALID_ARGUMENT', `--${flag}: invalid time "${text}"`, { hint: 'give an RFC 3339 time (2024-05-01T12:00:00Z) or a duration ago (10m)' });
    }
    return ms;
  }
  try {
    return now - parseDuration(trimmed, flag, { allowZero: true });
  } catch {
    throw new CliError('INVALID_ARGUMENT', `--${flag}: invalid time "${text}"`, { hint: 'give an RFC 3339 time (2024-05-01T12:00:00Z) or a duration ago (10m)' });
  }
}

/** Epoch ms as RFC 3339 (UTC, milliseconds), or null. */
export function rfc3339(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}
