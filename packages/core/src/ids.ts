import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { TetherError } from './errors.js';

/** A new execution id: sortable by creation time (base-36 ms), then random. */
export function newExecutionId(now: number = Date.now()): string {
  return `x${now.toString(36).padStart(9, '0')}${randomBytes(6).toString('hex')}`;
}

/**
 * `TERM`, `sigterm`, `SIGTERM` or `15` → `SIGTERM`. Fails with `INVALID_ARGUMENT` for a signal
 * this OS does not know.
 */
export function normalizeSignal(signal: string | number): NodeJS.Signals {
  const names = constants.signals as Record<string, number>;
  if (typeof signal === 'number' || /^\d+$/.test(signal)) {
    const number = Number(signal);
    const name = Object.keys(names).find((key) => names[key] === number);
    if (name) return name as NodeJS.Signals;
  } else {
    const upper = signal.trim().toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    if (Object.hasOwn(names, name)) return name as NodeJS.Signals;
  }
  throw new TetherError('INVALID_ARGUMENT', `unknown signal: ${String(signal)}`, { signal });
}
