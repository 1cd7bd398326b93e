import { z } from 'zod';
import { TetherError } from '@tether/core';

/**
 * Messages the relay sends a daemon on its registration (control) connection, as JSON text:
 * `registered` once accepted, then `pair` for each client waiting for it: the daemon opens
 * `…/accept/<id>` for it.
 */
export const ControlMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('registered'), environment: z.string() }),
  z.object({ type: z.literal('pair'), id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/) }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

/** Close codes of a registration, with their meaning for the daemon. */
export const CONTROL_CLOSE = {
  /** Another registration of the same environment took over (the newest wins). */
  replaced: 4000,
  /** The enrolment was revoked (or its credential rotated): do not come back with this credential. */
  revoked: 4403,
} as const;

/** The relay's URL for an environment's endpoint (`register`, `connect`, `accept/<id>`). */
export function relayEndpoint(relay: string, environment: string, verb: string): string {
  return `${relayBase(relay)}/v1/environments/${encodeURIComponent(environment)}/${verb}`;
}

/** `ws(s)://host:port[/prefix]` without a trailing slash; refuses other schemes and URLs with credentials. */
export function relayBase(relay: string): string {
  let url: URL;
  try {
    url = new URL(relay);
  } catch {
    throw new TetherError('INVALID_ARGUMENT', `the relay address is not a URL: expected wss://host:port`, { relay: String(relay).slice(0, 200) });
  }
  if (url.protocol !== 'wss:' && url.protocol !== 'ws:') throw new TetherError('INVALID_ARGUMENT', `unsupported scheme ${url.protocol} for a relay (use wss://, or ws:// on loopback)`);
  if (url.username || url.password || url.search) throw new TetherError('INVALID_ARGUMENT', 'credentials and queries do not belong in the relay URL');
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** The HTTP(S) form of a relay URL, for its operator methods. */
export function relayHttpBase(relay: string): string {
  return relayBase(relay).replace(/^ws/, 'http');
}
