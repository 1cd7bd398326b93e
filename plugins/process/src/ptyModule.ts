import { createRequire } from 'node:module';
import { TetherError } from '@tether/core/lite';
import type * as NodePty from 'node-pty';

// The one place that loads the PTY library (the backend and the supervisor both come here).
let loaded: typeof NodePty | undefined;

/** node-pty, loaded on first use; `BACKEND_UNAVAILABLE` if it cannot be loaded. */
export function loadPty(): typeof NodePty {
  try {
    loaded ??= createRequire(import.meta.url)('node-pty') as typeof NodePty;
    return loaded;
  } catch (cause) {
    throw new TetherError('BACKEND_UNAVAILABLE', `terminals are unavailable: node-pty could not be loaded (${(cause as Error).message})`, { backend: 'pty' }, { cause });
  }
}
