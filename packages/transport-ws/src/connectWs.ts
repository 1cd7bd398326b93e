import { isAbsolute } from 'node:path';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { TetherError, type Channel } from '@tether/core';
import { checkToken } from './daemonToken.js';
import { wsChannel, type KeepaliveOptions } from './wsChannel.js';

export interface ConnectWsOptions {
  /** The daemon's token, sent as `Authorization: Bearer <token>` (never in the URL). */
  readonly token: string;
  /** Certificate authorities to trust for `wss://` (PEM), e.g. the daemon's self-signed certificate. Default: the system's. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Give up on connecting (TCP, TLS and upgrade) after this long. Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Largest message accepted from the daemon. Default 256 MiB. */
  readonly maxPayloadBytes?: number;
  /** Keepalive of the connection. Default: ping every 15 s, drop after 30 s without a pong. */
  readonly keepalive?: KeepaliveOptions;
  /** Aborts the attempt (`ABORTED`). */
  readonly signal?: AbortSignal;
  /**
   * Speak WebSocket over this already open byte stream (an SSH forwarded channel, a bridge
   * command's stdin/stdout) instead of dialing `url`; `url` then only names the request (its
   * host is what the daemon's Host check sees). The stream is destroyed if the upgrade fails.
   */
  readonly stream?: Duplex;
  /** How messages name the daemon. Default: derived from `url`. */
  readonly display?: string;
}

const MiB = 1024 * 1024;

/**
 * Connects to a daemon and returns the connection as a `Channel`. `url` is `ws://host:port`,
 * `wss://host:port`, a Unix socket path (`/run/…/daemon.sock`, `unix:/…`), or `host:port`
 * (taken as `ws://`).
 *
 * Fails with `UNAUTHORIZED` ("unauthorized: …") when the daemon refuses the token (401) or the
 * request (403), `CONNECTION_LOST` ("connection refused: …") when nothing listens there, and
 * `INVALID_ARGUMENT` for a malformed URL or a URL that carries credentials.
 */
export function connectWs(url: string, options: ConnectWsOptions): Promise<Channel> {
  const parsed = parseDaemonUrl(url);
  const target = { ...parsed, display: options.display ?? parsed.display };
  checkToken(options?.token, 'the daemon token');
  const { signal, stream } = options;
  return new Promise<Channel>((resolve, reject) => {
    if (signal?.aborted) {
      stream?.destroy();
      return reject(new TetherError('ABORTED', 'connecting was aborted'));
    }
    const socket = new WebSocket(target.wsUrl, {
      ...(stream ? { createConnection: () => stream as never } : {}),
      headers: { Authorization: `Bearer ${options.token}` },
      ca: options.ca as string | Buffer | Array<string | Buffer> | undefined,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      maxPayload: options.maxPayloadBytes ?? 256 * MiB,
      perMessageDeflate: false,
      followRedirects: false,
    });
    let settled = false;
    const fail = (error: TetherError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      socket.removeAllListeners('open');
      socket.on('error', () => undefined);
      socket.terminate();
      stream?.destroy();
      reject(error);
    };
    const onAbort = () => fail(new TetherError('ABORTED', 'connecting was aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });

    socket.once('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      if (status === 401) fail(new TetherError('UNAUTHORIZED', `unauthorized: ${target.display} refused the token`, { status }));
      else if (status === 403) fail(new TetherError('UNAUTHORIZED', `unauthorized: ${target.display} refused the request (403: Origin or Host not allowed)`, { status }));
      else if (status === 400) fail(new TetherError('INVALID_ARGUMENT', `${target.display} refused the request as malformed (400)`, { status }));
      else fail(new TetherError('CONNECTION_LOST', `connection refused: ${target.display} answered HTTP ${status} instead of a WebSocket upgrade`, { status }));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => fail(connectError(error, target.display)));
    socket.once('open', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve(wsChannel(socket, options.keepalive));
    });
  });
}

/** A daemon address as `ws` wants it, and a form for messages (never with credentials). */
export function parseDaemonUrl(url: string): { wsUrl: string; display: string } {
  if (typeof url !== 'string' || url.length === 0) throw new TetherError('INVALID_ARGUMENT', 'the daemon address must be a non-empty string');
  const socketPath = url.startsWith('unix:') ? url.slice(5) : url.startsWith('ws+unix://') ? url.slice(10).split(':')[0]! : isAbsolute(url) ? url : undefined;
  if (socketPath !== undefined) {
    if (!isAbsolute(socketPath)) throw new TetherError('INVALID_ARGUMENT', 'a Unix socket path must be absolute');
    return { wsUrl: `ws+unix://${socketPath}:/`, display: socketPath };
  }
  let parsed: URL;
  try {
    parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `ws://${url}`);
  } catch {
    throw new TetherError('INVALID_ARGUMENT', 'the daemon address is not a valid URL (expected ws://host:port, wss://host:port or a socket path)');
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new TetherError('INVALID_ARGUMENT', `unsupported scheme ${parsed.protocol} for a daemon (use ws:// or wss://)`);
  }
  const display = `${parsed.protocol}//${parsed.host}`;
  if (parsed.username || parsed.password || parsed.searchParams.has('token') || parsed.searchParams.has('access_token')) {
    throw new TetherError('INVALID_ARGUMENT', `credentials do not belong in the daemon URL (${display}); pass the token as an option`);
  }
  return { wsUrl: parsed.href, display };
}

function connectError(error: NodeJS.ErrnoException, where: string): TetherError {
  if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') {
    return new TetherError('CONNECTION_LOST', `connection refused: nothing is listening at ${where}`, { errno: error.code }, { cause: error });
  }
  if (error.code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(error.code)) {
    return new TetherError('UNAUTHORIZED', `unauthorized: the TLS certificate of ${where} is not trusted (${error.code})`, { errno: error.code }, { cause: error });
  }
  if (error.code === 'EACCES') return new TetherError('PERMISSION_DENIED', `not allowed to connect to ${where}`, { errno: error.code }, { cause: error });
  const errno = error.code ?? (/timed out/i.test(error.message) ? 'ETIMEDOUT' : undefined);
  return new TetherError('CONNECTION_LOST', `connection reset by peer: could not connect to ${where} (${errno ?? error.message})`, { errno }, { cause: error });
}
