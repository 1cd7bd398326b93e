import type { Duplex } from 'node:stream';
import type { Channel } from '@tether/core';
import { connectWs, type KeepaliveOptions } from '@tether/transport-ws';

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
  /** Opens another stream to the same peer, to tell what a peer that is not tether is (see connectWs). */
  readonly probe?: () => Promise<Duplex>;
}

/**
 * Runs the daemon's WebSocket protocol over an already open byte stream (an SSH forwarded
 * channel, or the stdin/stdout of a bridge command) and returns it as a `Channel`.
 *
 * Fails with `UNAUTHORIZED` when the daemon refuses the token, `CONNECTION_LOST` when the
 * stream closes before the upgrade or the peer does not speak WebSocket.
 */
export function wsOverStream(stream: Duplex, options: WsOverStreamOptions): Promise<Channel> {
  const { url = 'ws://127.0.0.1/', ...rest } = options;
  return connectWs(url, { ...rest, stream });
}
