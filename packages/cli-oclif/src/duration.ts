import { CliError } from './cliError.js';

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration flag: `500ms`, `10s`, `5m`, `2h`, `1d`, `1m30s`, or a bare number of
 * milliseconds. Fails with a usage error naming the flag.
 */
export function parseDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(trimmed) ? trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g) : null;
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
  return Math.round(total);
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
    return now - parseDuration(trimmed, flag);
  } catch {
    throw new CliError('INVALID_ARGUMENT', `--${flag}: invalid time "${text}"`, { hint: 'give an RFC 3339 time (2024-05-01T12:00:00Z) or a duration ago (10m)' });
  }
}

/** Epoch ms as RFC 3339 (UTC, milliseconds), or null. */
export function rfc3339(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}
