import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { TetherError, type Channel } from '@tether/core';
import { wsChannel, type KeepaliveOptions } from '@tether/transport-ws';

/** Options of `wsOverStream`. */
export interface WsOverStreamOptions {
  /** The daemon's token, sent as `Authorization: Bearer <token>`. */
  readonly token: string;
  /** The URL of the upgrade request (its host is what the daemon's Host check sees). Default `ws://127.0.0.1/`. */
  readonly url?: string;
  /** What the stream leads to, for messages. */
  readonly display: string;
  /** Give up on the upgrade after this long. Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Largest message accepted from the daemon. Default 256 MiB. */
  readonly maxPayloadBytes?: number;
  /** WebSocket keepalive. Default: `wsChannel`'s (ping every 15 s). */
  readonly keepalive?: KeepaliveOptions;
  readonly signal?: AbortSignal;
}

const MiB = 1024 * 1024;

/**
 * Runs the daemon's WebSocket protocol over an already open byte stream (an SSH forwarded
 * channel, or the stdin/stdout of a bridge command) and returns it as a `Channel`.
 *
 * Fails with `UNAUTHORIZED` when the daemon refuses the token, `CONNECTION_LOST` when the
 * stream closes before the upgrade or the peer does not speak WebSocket.
 */
export function wsOverStream(stream: Duplex, options: WsOverStreamOptions): Promise<Channel> {
  const { signal, display } = options;
  return new Promise<Channel>((resolve, reject) => {
    if (signal?.aborted) {
      stream.destroy();
      return reject(new TetherError('ABORTED', 'connecting was aborted'));
    }
    const socket = new WebSocket(options.url ?? 'ws://127.0.0.1/', {
      createConnection: () => stream as never,
      headers: { Authorization: `Bearer ${options.token}` },
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
      stream.destroy();
      reject(error);
    };
    const onAbort = () => fail(new TetherError('ABORTED', 'connecting was aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });

    socket.once('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      if (status === 401) fail(new TetherError('UNAUTHORIZED', `unauthorized: the daemon at ${display} refused the token`, { status }));
      else if (status === 403) fail(new TetherError('UNAUTHORIZED', `unauthorized: the daemon at ${display} refused the request (403)`, { status }));
      else fail(new TetherError('CONNECTION_LOST', `connection refused: ${display} answered HTTP ${status} instead of a WebSocket upgrade`, { status }));
    });
    socket.once('error', (error: Error) =>
      fail(new TetherError('CONNECTION_LOST', `connection reset by peer: the WebSocket to ${display} failed (${error.message})`, {}, { cause: error })),
    );
    socket.once('open', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve(wsChannel(socket, options.keepalive));
    });
  });
}
