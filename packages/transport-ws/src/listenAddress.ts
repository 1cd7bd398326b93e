import { isAbsolute } from 'node:path';
import { TetherError } from '@tether/core';

/** Where a listener listens: a TCP host and port, or a Unix socket path. */
export type ListenAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

/**
 * Parses a listen address: `host:port` (`127.0.0.1:7337`, `[::1]:0`, `localhost:7337`), or a
 * Unix socket as an absolute path or `unix:/path`. Port 0 asks the OS for a free port.
 */
export function parseListenAddress(text: string): ListenAddress {
  if (typeof text !== 'string' || text.length === 0) throw new TetherError('INVALID_ARGUMENT', 'the listen address must be a non-empty string');
  const path = text.startsWith('unix:') ? text.slice('unix:'.length) : isAbsolute(text) ? text : undefined;
  if (path !== undefined) {
    if (!isAbsolute(path) || path.includes('\0')) throw new TetherError('INVALID_ARGUMENT', `a Unix socket path must be absolute: ${text}`);
    return { kind: 'unix', path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new TetherError('INVALID_ARGUMENT', `invalid listen address "${text}": expected host:port, [ipv6]:port or a Unix socket path`);
  }
  return { kind: 'tcp', host: (match[1] ?? match[2])!, port };
}
