import { createRequire } from 'node:module';
import type * as NodePty from '@lydell/node-pty';

/**
 * The one place that names the PTY library: `@lydell/node-pty`, node-pty's own code published
 * with prebuilt binaries (one optional package per platform), so installing needs no compiler.
 * Loaded on first use: executions without a terminal never load the native module.
 */
/**
 * A terminal. `write` takes bytes too: the typings of this distribution say `string` only, but
 * its `UnixTerminal` hands the value to a `tty.ReadStream`'s `write`, which takes a Buffer (as
 * node-pty 1.1's own typings declare).
 */
export type IPty = Omit<NodePty.IPty, 'write'> & { write(data: string | Buffer): void };
export type PtyModule = Omit<typeof NodePty, 'spawn'> & { spawn(...args: Parameters<typeof NodePty.spawn>): IPty };

const MODULE = '@lydell/node-pty';

/** Loads the PTY library; throws what `require` threw when its binary is missing. */
export function loadNodePty(): PtyModule {
  return createRequire(import.meta.url)(MODULE) as PtyModule;
}
