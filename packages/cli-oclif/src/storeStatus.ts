import type { StoreHealth } from '@tether/core';
import { describeError } from './cliError.js';

/**
 * A daemon's event-store health as `daemon status` and `machine check` print it: `{"ok":true}`,
 * or `{"ok":false,"code","message","dir","since","retries","hint"}` (`since` in RFC 3339, the
 * hint the CLI gives with that error code).
 */
export function storeStatus(store: StoreHealth): Record<string, unknown> {
  if (store.ok) return { ok: true };
  const error = { [Symbol.for('tether.TetherError')]: true, code: store.code, message: store.message, details: { dir: store.dir } };
  const { hint } = describeError(error).json.error;
  return { ok: false, code: store.code, message: store.message, dir: store.dir ?? null, since: new Date(store.since).toISOString(), retries: store.retries, hint };
}
