import { connect as netConnect } from 'node:net';
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
  /**
   * Opens another stream to the same peer, to ask a peer that answered HTTP but not as a tether
   * daemon what it is (`identifyPeer`). Default: a new TCP connection for `ws://` URLs; none
   * with `stream`.
   */
  readonly probe?: () => Promise<Duplex>;
}

const MiB = 1024 * 1024;

/**
 * Connects to a daemon and returns the connection as a `Channel`. `url` is `ws://host:port`,
 * `wss://host:port`, a Unix socket path (`/run/…/daemon.sock`, `unix:/…`), or `host:port`
 * (taken as `ws://`); `http://` and `https://` are taken as `ws://` and `wss://`.
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
      ...(stream ? { createConnection: () => socketLike(stream) as never } : {}),
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
      // What a destroyed stream reports afterwards (an abort) is of no interest any more.
      stream?.on('error', () => undefined).destroy();
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
      else {
        // A tether daemon answers every upgrade with 101 or one of the above: this is another HTTP server.
        const server = typeof res.headers['server'] === 'string' ? res.headers['server'].slice(0, 100) : undefined;
        const probe = options.probe ?? (stream || !target.tcp ? undefined : () => tcpStream(target.tcp!));
        void (probe ? identifyPeer(probe) : Promise.resolve(undefined)).then((peer) => {
          if (peer === 'codexd') {
            fail(new TetherError('CONNECTION_LOST', `connection refused: ${target.display} is served by codexd, not tether`, { status, peer }));
          } else {
            fail(
              new TetherError('CONNECTION_LOST', `connection refused: ${target.display} answered HTTP ${status} instead of a WebSocket upgrade: it is not a tether daemon`, {
                status,
                peer: 'http',
                ...(server ? { server } : {}),
              }),
            );
          }
        });
      }
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
export function parseDaemonUrl(url: string): { wsUrl: string; display: string; tcp?: { host: string; port: number } } {
  if (typeof url !== 'string' || url.length === 0) throw new TetherError('INVALID_ARGUMENT', 'the daemon address must be a non-empty string');
  const socketPath = url.startsWith('unix:') ? url.slice(5) : url.startsWith('ws+unix://') ? url.slice(10).split(':')[0]! : isAbsolute(url) ? url : undefined;
  if (socketPath !== undefined) {
    if (!isAbsolute(socketPath)) throw new TetherError('INVALID_ARGUMENT', 'a Unix socket path must be absolute');
    return { wsUrl: `ws+unix://${socketPath}:/`, display: socketPath };
  }
  let parsed: URL;
  try {
    // http:// and https:// (codex-remote's direct addresses) name the same daemon's WebSocket.
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url.replace(/^http(s?):\/\//i, 'ws$1://') : `ws://${url}`;
    parsed = new URL(withScheme);
  } catch {
    throw new TetherError('INVALID_ARGUMENT', 'the daemon address is not a valid URL (expected ws://host:port, wss://host:port or a socket path)');
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new TetherError('INVALID_ARGUMENT', `unsupported scheme ${parsed.protocol} for a daemon (use ws://, wss://, http:// or https://)`);
  }
  const display = `${parsed.protocol}//${parsed.host}`;
  if (parsed.username || parsed.password || parsed.searchParams.has('token') || parsed.searchParams.has('access_token')) {
    throw new TetherError('INVALID_ARGUMENT', `credentials do not belong in the daemon URL (${display}); pass the token as an option`);
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const port = Number(parsed.port || (parsed.protocol === 'wss:' ? 443 : 80));
  return { wsUrl: parsed.href, display, ...(parsed.protocol === 'ws:' ? { tcp: { host, port } } : {}) };
}

/** What a peer that is not a tether daemon turned out to be, when `identifyPeer` recognises it. */
export type PeerKind = 'codexd';

/**
 * Asks the peer behind a fresh stream `GET /health` (plain HTTP, `Connection: close`) and tells
 * whether it is codexd (its health answer: `{"ok":true,"version",…,"go"}`), the daemon that
 * tether replaces. Resolves undefined for anything else, on a timeout (2 s) or an error; reads
 * at most 16 KiB. The stream is destroyed at the end.
 */
export async function identifyPeer(open: () => Promise<Duplex>, timeoutMs = 2_000): Promise<PeerKind | undefined> {
  let stream: Duplex;
  try {
    stream = await open();
  } catch {
    return undefined;
  }
  const text = await new Promise<string>((resolve) => {
    let data = '';
    const done = () => {
      clearTimeout(timer);
      stream.destroy();
      resolve(data);
    };
    const timer = setTimeout(done, timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.length > 16 * 1024) done();
    });
    stream.once('end', done);
    stream.once('close', done);
    stream.on('error', done);
    stream.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n');
  });
  const match = /^HTTP\/1\.[01] 200\b[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(text);
  if (!match) return undefined;
  // The body may be chunked: the JSON object is what lies between its first { and last }.
  const body = match[1]!;
  const json = body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1);
  try {
    const health = JSON.parse(json) as Record<string, unknown>;
    return health['ok'] === true && typeof health['go'] === 'string' && typeof health['version'] === 'string' ? 'codexd' : undefined;
  } catch {
    return undefined;
  }
}

function tcpStream(tcp: { host: string; port: number }): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(tcp.port, tcp.host);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * An open byte stream as Node's HTTP client wants a socket: it calls `setTimeout`, `setNoDelay`
 * and `setKeepAlive`, which a stream that is not a `net.Socket` (an SSH channel) lacks — after a
 * non-upgrade answer it would throw from inside the HTTP client and take the process down.
 */
function socketLike(stream: Duplex): Duplex {
  const target = stream as Duplex & Record<string, unknown>;
  for (const method of ['setTimeout', 'setNoDelay', 'setKeepAlive', 'ref', 'unref']) {
    if (typeof target[method] !== 'function') target[method] = () => stream;
  }
  return stream;
}

function connectError(error: NodeJS.ErrnoException, where: string): TetherError {
  if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') {
    return new TetherError('CONNECTION_LOST', `connection refused: nothing is listening at ${where}`, { errno: error.code }, { cause: error });
  }
  if (error.code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(error.code)) {
    return new TetherError('UNAUTHORIZED', `unauthorized: the TLS certificate of ${where} is not trusted (${error.code})`, { errno: error.code }, { cause: error });
  }
  if (error.code === 'EACCES') return new TetherError('PERMISSION_DENIED', `not allowed to connect to ${where}`, { errno: error.code }, { cause: error });
  // Node's HTTP parser failed: what answered does not speak HTTP at all.
  if (error.code?.startsWith('HPE_')) {
    return new TetherError('CONNECTION_LOST', `connection refused: ${where} does not speak HTTP (${error.code}): it is not a tether daemon`, { errno: error.code, peer: 'not-http' }, { cause: error });
  }
  const errno = error.code ?? (/timed out/i.test(error.message) ? 'ETIMEDOUT' : undefined);
  const reset = errno === 'ECONNRESET' || errno === 'EPIPE' || /socket hang up/i.test(error.message);
  return new TetherError(
    'CONNECTION_LOST',
    `connection reset by peer: could not connect to ${where} (${errno ?? error.message})`,
    { errno, ...(reset ? { peer: 'reset' } : {}) },
    { cause: error },
  );
}
