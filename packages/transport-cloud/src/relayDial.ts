import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { relayHttpBase } from './relayProtocol.js';

/** The HTTP upgrade token of a session leg: after `101`, the connection carries raw bytes. */
export const SESSION_PROTOCOL = 'tether-relay/1';

export type DialResult = { readonly socket: Socket } | { readonly status: number; readonly body: string } | { readonly error: NodeJS.ErrnoException };

export interface DialOptions {
  readonly credential: string;
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Until the `101` (for a client: the pairing included). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Opens a session leg to the relay: an HTTP(S) request to `path` with `Upgrade: tether-relay/1`
 * and the credential. Resolves with the raw socket once the relay answers `101` (any bytes it
 * sent along are put back into the socket), with the status and body of a refusal, or with the
 * network error. The relay then splices the two legs of a session together, byte for byte.
 */
export function dialSession(relay: string, path: string, options: DialOptions): Promise<DialResult> {
  const url = new URL(`${relayHttpBase(relay)}${path}`);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: DialResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const req = request(url, {
      method: 'GET',
      headers: { Connection: 'Upgrade', Upgrade: SESSION_PROTOCOL, Authorization: `Bearer ${options.credential}` },
      ca: options.ca as string | Buffer | Array<string | Buffer> | undefined,
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy();
      settle({ error: Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }) });
    }, options.timeoutMs);
    const onAbort = () => {
      req.destroy();
      settle({ error: Object.assign(new Error('aborted'), { code: 'ABORT_ERR' }) });
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    req.once('upgrade', (_res: IncomingMessage, socket: Socket, head: Buffer) => {
      if (settled) return socket.destroy();
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      settle({ socket });
    });
    req.once('response', (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body = (body + chunk).slice(0, 500)));
      res.on('end', () => settle({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', () => settle({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.once('error', (error: NodeJS.ErrnoException) => settle({ error }));
    req.end();
  });
}
