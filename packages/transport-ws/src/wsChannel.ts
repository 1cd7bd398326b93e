import { Observable, type Subscriber } from 'rxjs';
import WebSocket from 'ws';
import { MAX_TIMER_MS, TetherError, type Channel } from '@tether/core';

/** Liveness checking of a WebSocket: a ping every `pingIntervalMs`, and a deadline for its pong. */
export interface KeepaliveOptions {
  /** Time between pings. Default 15 000 ms; 0 turns keepalive off. */
  readonly pingIntervalMs?: number;
  /**
   * The connection is terminated when a ping gets no pong (nor any other frame) within this
   * long. Default 30 000 ms, so a silent peer is detected within ping interval + this (45 s).
   */
  readonly pongTimeoutMs?: number;
}

export const DEFAULT_PING_INTERVAL_MS = 15_000;
export const DEFAULT_PONG_TIMEOUT_MS = 30_000;

/** Close codes of a clean closing handshake: the channel completes instead of erroring. */
const NORMAL_CLOSE_CODES = new Set([1000, 1001, 1005]);

/**
 * A `Channel` over an open `ws` WebSocket (either side). Text frames arrive as strings, binary
 * frames as `Uint8Array`s. Messages that arrive before `messages$` is subscribed are kept for the
 * first subscriber (the channel has one reader: the RPC server or the RemoteMachine).
 *
 * A clean close completes `messages$`; anything else (a reset, a protocol error, a frame over
 * `maxPayload` — close code 1009 — or a peer that stopped answering pings) errors it with
 * `CONNECTION_LOST`.
 */
export function wsChannel(socket: WebSocket, keepalive: KeepaliveOptions = {}): Channel {
  const pingIntervalMs = keepalive.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const pongTimeoutMs = keepalive.pongTimeoutMs ?? DEFAULT_PONG_TIMEOUT_MS;
  for (const [name, value] of [['pingIntervalMs', pingIntervalMs], ['pongTimeoutMs', pongTimeoutMs]] as const) {
    // A timer longer than 2^31 - 1 ms would fire at once (Node clamps it to 1 ms).
    if (!Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
      throw new TetherError('INVALID_ARGUMENT', `keepalive ${name} must be from 0 to ${MAX_TIMER_MS} ms (about 24.8 days)`, { maximum: MAX_TIMER_MS });
    }
  }

  let reader: Subscriber<string | Uint8Array> | undefined;
  const early: Array<string | Uint8Array> = [];
  let ended: { error?: TetherError } | undefined;
  let lastError: Error | undefined;
  let closedHere = false;

  const finish = (end: { error?: TetherError }) => {
    if (ended) return;
    ended = end;
    stopKeepalive();
    if (!reader) return;
    if (end.error) reader.error(end.error);
    else reader.complete();
  };

  socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    alive();
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const message = isBinary ? bytes : bytes.toString('utf8');
    if (reader) reader.next(message);
    else if (!ended) early.push(message);
  });
  socket.on('error', (error: Error) => {
    lastError = error;
  });
  socket.on('close', (code: number, reason: Buffer) => {
    if (closedHere || (NORMAL_CLOSE_CODES.has(code) && !lastError)) return finish({});
    const why = lastError?.message ?? (reason.length > 0 ? reason.toString('utf8') : `close code ${code}`);
    finish({ error: new TetherError('CONNECTION_LOST', `connection reset by peer (${why})`, { closeCode: code }, { cause: lastError }) });
  });

  // Keepalive: after each ping, the peer has `pongTimeoutMs` to show a sign of life.
  let pingTimer: NodeJS.Timeout | undefined;
  let pongDeadline: NodeJS.Timeout | undefined;
  function alive() {
    if (pongDeadline) clearTimeout(pongDeadline);
    pongDeadline = undefined;
  }
  function stopKeepalive() {
    if (pingTimer) clearInterval(pingTimer);
    alive();
  }
  if (pingIntervalMs > 0) {
    socket.on('pong', alive);
    pingTimer = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN || pongDeadline) return;
      socket.ping();
      pongDeadline = setTimeout(() => {
        lastError = new Error(`no pong within ${pongTimeoutMs} ms; the peer stopped answering`);
        socket.terminate();
      }, pongTimeoutMs);
      pongDeadline.unref();
    }, pingIntervalMs);
    pingTimer.unref();
  }

  // Messages sent in one tick leave in one write: the RPC server sends a follow's events one by
  // one, and a syscall per small frame would cost more than the frames. `ws` has no public
  // handle on its socket; without one, every message is written on its own.
  const raw = (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  let corked = false;
  const uncork = () => {
    corked = false;
    raw?.uncork();
  };

  const messages$ = new Observable<string | Uint8Array>((subscriber) => {
    if (reader) {
      subscriber.error(new TetherError('INTERNAL', 'a channel has one reader; messages$ is already subscribed'));
      return;
    }
    reader = subscriber;
    for (const message of early.splice(0)) subscriber.next(message);
    if (ended?.error) subscriber.error(ended.error);
    else if (ended) subscriber.complete();
  });

  return {
    messages$,
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    send(message: string | Uint8Array) {
      if (socket.readyState !== WebSocket.OPEN) {
        throw new TetherError('CONNECTION_LOST', 'connection reset by peer: the channel is closed');
      }
      if (raw && !corked) {
        corked = true;
        raw.cork();
        process.nextTick(uncork);
      }
      socket.send(message);
    },
    pause() {
      socket.pause();
    },
    resume() {
      socket.resume();
    },
    close(reason?: string) {
      if (socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) return;
      closedHere = true;
      socket.close(1000, reason === undefined ? undefined : closeReason(reason));
      // The peer may never answer the close frame; do not wait for it forever.
      setTimeout(() => socket.terminate(), 5_000).unref();
    },
  };
}

/** A close reason fits in 123 bytes of UTF-8. */
function closeReason(reason: string): string {
  let text = reason;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}
