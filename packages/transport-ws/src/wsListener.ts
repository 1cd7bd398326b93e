import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Server as TlsServer } from 'node:tls';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, isIP, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { TetherError, type Channel } from '@tether/core';
import { TokenVerifier } from './daemonToken.js';
import { parseListenAddress, type ListenAddress } from './listenAddress.js';
import { wsChannel, type KeepaliveOptions } from './wsChannel.js';

/** A line for the daemon's log. Never holds a credential. */
export interface LogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** Who is on the other end of an accepted channel. */
export interface ConnectionInfo {
  /** `ip:port` of the peer, or `unix` for a Unix socket. */
  readonly remote: string;
  /** The browser Origin the peer sent (only ever an allow-listed one). */
  readonly origin?: string;
}

export interface WsListenerOptions {
  /** `host:port` (port 0 for any free port), `[ipv6]:port`, or a Unix socket path (absolute or `unix:/…`). */
  readonly listen: string | ListenAddress;
  /** The bearer token every client must send as `Authorization: Bearer <token>`. */
  readonly token: string;
  /** Receives each authenticated connection. */
  readonly onChannel: (channel: Channel, info: ConnectionInfo) => void;
  /** Serve `wss://` with this certificate and key (PEM). TCP only. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Browser origins allowed to connect (exact `scheme://host[:port]`). Default none: any request with an Origin is refused. */
  readonly allowedOrigins?: readonly string[];
  /** Host names accepted in the Host header besides the listen address and localhost. Default none. */
  readonly allowedHosts?: readonly string[];
  /** Largest WebSocket message accepted; a larger one closes the connection with 1009. Default 16 MiB. */
  readonly maxPayloadBytes?: number;
  /**
   * Most connections that have not finished their upgrade at once; more are dropped. A pending
   * connection costs a socket and a few KiB, so the limit is generous: what keeps one peer from
   * taking every slot is `maxPendingPerSource`. Default 512.
   */
  readonly maxPendingConnections?: number;
  /** Most unfinished upgrades from one source (an IP address; a Unix socket is one source); more from it are dropped. Default 128. */
  readonly maxPendingPerSource?: number;
  /** A connection must complete its upgrade (TLS and HTTP headers included) within this long. Default 5 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /**
   * Most open WebSocket connections. An authenticated client over the limit is let in and the
   * connection that has been quiet the longest (no message either way), of the source holding
   * the most, is closed with 1013 (try again later): room is always kept for a new authenticated
   * client, and unauthenticated peers never count. Default 256.
   */
  readonly maxConnections?: number;
  /** Most open connections from one source; over it, that source's quietest one is closed. Default `maxConnections`. */
  readonly maxConnectionsPerSource?: number;
  /** Keepalive of accepted connections. Default: ping every 15 s, drop after 30 s without a pong. */
  readonly keepalive?: KeepaliveOptions;
  /** Where log lines go. Default: nowhere. */
  readonly log?: (entry: LogEntry) => void;
}

/** How `WsListener.accept` labels a stream it is handed. */
export interface AcceptOptions {
  /**
   * Where the stream comes from, for the logs and as its source for the per-source limits (all
   * streams accepted with the same label count as one source). Default `accepted`.
   */
  readonly source?: string;
}

const MiB = 1024 * 1024;
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * The daemon's side of the `ws` transport: listens, refuses anything not authenticated (and any
 * browser or DNS-rebinding attempt) before the WebSocket upgrade, and hands each accepted
 * connection over as a `Channel`.
 *
 * ```ts
 * const listener = await WsListener.listen({ listen: '127.0.0.1:0', token, onChannel: (ch) => serveMachine(machine, ch) });
 * console.error(listener.url); // ws://127.0.0.1:40123
 * ```
 */
export class WsListener {
  /** The address actually listened on (the OS's port when 0 was asked for). */
  readonly address: ListenAddress;
  /** How clients reach it: `ws://host:port`, `wss://host:port` or `unix:/path`. */
  readonly url: string;

  readonly #server: Server;
  readonly #wss: WebSocketServer;
  /** Unfinished handshakes, oldest first (a Map keeps insertion order). */
  readonly #pending = new Map<unknown, { socket: Duplex; timer: NodeJS.Timeout; source: string }>();
  /** Open connections, with where they come from and when they last carried a message. */
  readonly #clients = new Map<WebSocket, { source: string; lastActive: number }>();
  readonly #socketIno: number | undefined;
  /** Streams handed over by `accept`, with the source they were given. */
  readonly #accepted = new WeakMap<Duplex, string>();
  #closing: Promise<void> | undefined;

  private constructor(server: Server, wss: WebSocketServer, address: ListenAddress, url: string, socketIno: number | undefined) {
    this.#server = server;
    this.#wss = wss;
    this.address = address;
    this.url = url;
    this.#socketIno = socketIno;
  }

  /** Open WebSocket connections. */
  get connections(): number {
    return this.#clients.size;
  }

  /**
   * Serves a stream that is already connected, as if a client had just connected to this
   * listener: e.g. the decrypted side of a TLS session terminated elsewhere in this process
   * (the cloud transport's relay agent), without a second trip through a socket. The stream then
   * goes through exactly what any connection goes through: the handshake deadline and pending
   * limits, the upgrade checks (token, Host, Origin), the connection limits (`options.source` is
   * its source), the message and bytes-in-flight budgets and the keepalive. Not for a `wss://`
   * listener (the stream must speak plain HTTP): `INVALID_ARGUMENT`. After `close()` the stream
   * is destroyed.
   */
  accept(stream: Duplex, options: AcceptOptions = {}): void {
    if (this.#server instanceof TlsServer) throw new TetherError('INVALID_ARGUMENT', 'accept() is for a listener without TLS: this one expects TLS on every connection');
    if (this.#closing) return void stream.destroy();
    this.#accepted.set(stream, options.source ?? 'accepted');
    this.#server.emit('connection', stream);
  }

  /** Starts listening. Fails with `INVALID_ARGUMENT` (bad or busy address) or `PERMISSION_DENIED`. */
  static async listen(options: WsListenerOptions): Promise<WsListener> {
    const requested = typeof options.listen === 'string' ? parseListenAddress(options.listen) : options.listen;
    const verifier = new TokenVerifier(options.token);
    if (typeof options.onChannel !== 'function') throw new TetherError('INVALID_ARGUMENT', 'onChannel must be a function');
    if (options.tls && requested.kind === 'unix') throw new TetherError('INVALID_ARGUMENT', 'TLS is for TCP listeners; a Unix socket is protected by its file mode');
    const maxPayload = positive(options.maxPayloadBytes ?? 16 * MiB, 'maxPayloadBytes');
    const maxPending = positive(options.maxPendingConnections ?? 512, 'maxPendingConnections');
    const maxPendingPerSource = positive(options.maxPendingPerSource ?? 128, 'maxPendingPerSource');
    const handshakeTimeoutMs = positive(options.handshakeTimeoutMs ?? 5_000, 'handshakeTimeoutMs');
    const maxConnections = positive(options.maxConnections ?? 256, 'maxConnections');
    const maxPerSource = positive(options.maxConnectionsPerSource ?? maxConnections, 'maxConnectionsPerSource');
    const allowedOrigins = new Set((options.allowedOrigins ?? []).map((o) => o.toLowerCase().replace(/\/+$/, '')));
    const log = options.log ?? (() => undefined);

    const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }) : createHttpServer();
    // Node's own deadlines as a second line behind the per-socket timer below.
    server.headersTimeout = handshakeTimeoutMs;
    server.requestTimeout = handshakeTimeoutMs;
    const wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false });

    const address = await listenOn(server, requested);
    const socketIno = address.kind === 'unix' ? (await lstat(address.path)).ino : undefined;
    const url = address.kind === 'unix' ? `unix:${address.path}` : `${options.tls ? 'wss' : 'ws'}://${urlHost(address.host)}:${address.port}`;
    const listener = new WsListener(server, wss, address, url, socketIno);
    const hostAllowed = hostCheck(address, options.allowedHosts ?? []);

    const refuse = (socket: Duplex, status: number, reason: string, remote: string, headers: Record<string, string> = {}) => {
      listener.#settle(socket);
      log({ level: 'warn', msg: 'connection refused', status, reason, remote });
      const body = `${reason}\n`;
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`,
      );
      setTimeout(() => socket.destroy(), 1_000).unref();
    };

    const track = (socket: Socket) => {
      if (listener.#closing) return void socket.destroy();
      const source = listener.#sourceOf(socket);
      // Dropping the newcomer, not an older one: evicting would let peers that re-connect at
      // once churn the table faster than a real client completes its upgrade.
      const full = listener.#pending.size >= maxPending ? maxPending : countBy(listener.#pending.values(), source) >= maxPendingPerSource ? maxPendingPerSource : 0;
      if (full) {
        log({ level: 'warn', msg: 'connection dropped: too many connections still in their handshake', limit: full, source });
        socket.destroy();
        return;
      }
      const timer = setTimeout(() => {
        log({ level: 'warn', msg: 'connection dropped: handshake not completed in time', timeoutMs: handshakeTimeoutMs, remote: listener.#remoteOf(socket) });
        listener.#settle(socket);
        socket.destroy();
      }, handshakeTimeoutMs);
      timer.unref();
      listener.#pending.set(listener.#pendingKey(socket), { socket, timer, source });
      socket.once('close', () => listener.#settle(socket));
    };
    server.on('connection', track);

    server.on('request', (_req: IncomingMessage, res) => {
      res.writeHead(426, { Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket' });
      res.end('this is a tether daemon: connect with a WebSocket client\n');
    });

    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const remote = listener.#remoteOf(req.socket);
      socket.on('error', () => socket.destroy());
      if (listener.#closing) return refuse(socket, 503, 'the daemon is shutting down', remote);
      const query = new URL(req.url ?? '/', 'http://daemon').searchParams;
      if (query.has('token') || query.has('access_token')) {
        return refuse(socket, 400, 'credentials are not accepted in the URL; send Authorization: Bearer <token>', remote);
      }
      if (!hostAllowed(req.headers.host)) return refuse(socket, 403, 'forbidden: Host is not this daemon', remote);
      const origin = req.headers.origin;
      if (origin !== undefined && !allowedOrigins.has(origin.toLowerCase())) {
        return refuse(socket, 403, 'forbidden: Origin not allowed', remote);
      }
      if (!verifier.verifyAuthorization(req.headers.authorization)) {
        return refuse(socket, 401, 'unauthorized: a valid Authorization: Bearer token is required', remote, { 'WWW-Authenticate': 'Bearer' });
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        listener.#settle(socket);
        if (listener.#closing) return ws.terminate();
        // Authenticated: it gets in, and over a limit the quietest connection makes room.
        const source = listener.#sourceOf(req.socket);
        if (countBy(listener.#clients.values(), source) >= maxPerSource) listener.#closeQuietest(source, log);
        else if (listener.#clients.size >= maxConnections) listener.#closeQuietest(busiest(listener.#clients.values()), log);
        const client = { source, lastActive: performance.now() };
        listener.#clients.set(ws, client);
        ws.once('close', () => listener.#clients.delete(ws));
        ws.on('message', () => (client.lastActive = performance.now()));
        log({ level: 'info', msg: 'client connected', remote });
        const channel = wsChannel(ws, options.keepalive);
        const tracked: Channel = {
          messages$: channel.messages$,
          get bufferedAmount() {
            return channel.bufferedAmount;
          },
          send(message) {
            client.lastActive = performance.now();
            channel.send(message);
          },
          pause: () => channel.pause?.(),
          resume: () => channel.resume?.(),
          close: (reason) => channel.close(reason),
        };
        options.onChannel(tracked, origin === undefined ? { remote } : { remote, origin });
      });
    });
    server.on('clientError', (_error, socket) => socket.destroy());

    log({ level: 'info', msg: 'listening', url });
    return listener;
  }

  /**
   * Stops accepting, drops half-open connections, closes open ones (1001, then terminated if the
   * peer does not answer within 2 s) and removes the Unix socket file. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const { socket, timer } of this.#pending.values()) {
        clearTimeout(timer);
        socket.destroy();
      }
      this.#pending.clear();
      this.#server.closeAllConnections();
      const gone = [...this.#clients.keys()].map(
        (ws) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === WebSocket.CLOSED) return resolve();
            ws.once('close', () => resolve());
            ws.close(1001, 'the daemon is shutting down');
            setTimeout(() => ws.terminate(), 2_000).unref();
          }),
      );
      await Promise.all(gone);
      await serverClosed;
      this.#wss.close();
      if (this.address.kind === 'unix') await removeSocketFile(this.address.path, this.#socketIno);
    })();
    return this.#closing;
  }

  /**
   * Pending sockets are known by their peer's address and port: with TLS the upgrade arrives on
   * a TLS socket wrapping the TCP socket seen at connection time. Unix sockets have no such
   * address (and no TLS), nor has an accepted stream any of its own (it may be a TLS socket over
   * a connection whose peer serves many), so they are their own key.
   */
  #pendingKey(socket: Duplex): unknown {
    if (this.#accepted.has(socket)) return socket;
    const { remoteAddress, remotePort } = socket as Socket;
    return remotePort === undefined ? socket : `${remoteAddress}:${remotePort}`;
  }

  /** The source of a connection for the per-source limits: an accepted stream's label, `unix`, or the peer's IP address. */
  #sourceOf(socket: Duplex): string {
    return this.#accepted.get(socket) ?? (this.address.kind === 'unix' ? 'unix' : sourceOf(socket as Socket));
  }

  /** Who a connection is, for the log. */
  #remoteOf(socket: Duplex): string {
    return this.#accepted.get(socket) ?? (this.address.kind === 'unix' ? 'unix' : remoteOf(socket as Socket));
  }

  /** Closes (1013, try again later) the open connection of `source` that has been quiet the longest. */
  #closeQuietest(source: string, log: (entry: LogEntry) => void): void {
    let quietest: WebSocket | undefined;
    let since = Number.POSITIVE_INFINITY;
    for (const [ws, client] of this.#clients) {
      if (client.source === source && client.lastActive < since && ws.bufferedAmount === 0) {
        quietest = ws;
        since = client.lastActive;
      }
    }
    if (!quietest) return;
    // It stops counting now; its peer gets a close frame and, if it does not answer, is cut off.
    this.#clients.delete(quietest);
    log({ level: 'warn', msg: 'connection closed to make room for a new client', source, quietMs: Math.round(performance.now() - since) });
    const ws = quietest;
    ws.close(1013, 'too many connections: closed the quietest one');
    setTimeout(() => ws.terminate(), 2_000).unref();
  }

  /** The socket finished (or abandoned) its handshake: it no longer counts as pending. */
  #settle(socket: Duplex): void {
    const key = this.#pendingKey(socket);
    const entry = this.#pending.get(key);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.#pending.delete(key);
  }
}

/** Where a connection comes from, for the per-source limits: its IP address (IPv4-mapped IPv6 as IPv4). */
function sourceOf(socket: Socket): string {
  const address = socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function countBy(entries: Iterable<{ source: string }>, source: string): number {
  let n = 0;
  for (const entry of entries) if (entry.source === source) n++;
  return n;
}

/** The source with the most entries. */
function busiest(entries: Iterable<{ source: string }>): string {
  const counts = new Map<string, number>();
  let top = '';
  let most = 0;
  for (const { source } of entries) {
    const n = (counts.get(source) ?? 0) + 1;
    counts.set(source, n);
    if (n > most) [top, most] = [source, n];
  }
  return top;
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new TetherError('INVALID_ARGUMENT', `${name} must be a positive integer`);
  return value;
}

function remoteOf(socket: Socket): string {
  return socket.remoteAddress === undefined ? 'unknown' : `${socket.remoteAddress}:${socket.remotePort}`;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * The Host header must name this daemon: localhost, the listen host, or an allow-listed name.
 * A name that merely resolves here (DNS rebinding) does not pass. Listening on a wildcard
 * address, any IP literal and the machine's hostname pass too. Unix sockets skip the check:
 * browsers cannot reach them.
 */
function hostCheck(address: ListenAddress, allowedHosts: readonly string[]): (header: string | undefined) => boolean {
  if (address.kind === 'unix') return () => true;
  const wildcard = WILDCARD_HOSTS.has(address.host);
  const allowed = new Set([...LOOPBACK_NAMES, address.host.toLowerCase(), ...allowedHosts.map((h) => h.toLowerCase())]);
  if (wildcard) allowed.add(hostname().toLowerCase());
  return (header) => {
    if (header === undefined) return false;
    const host = hostOfHeader(header);
    if (host === undefined) return false;
    return allowed.has(host) || (wildcard && isIP(host) !== 0);
  };
}

/** `example.com:7337` → `example.com`, `[::1]:7337` → `::1`; undefined if malformed. */
function hostOfHeader(header: string): string | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::\d{1,5})?$/.exec(header.trim());
  const host = match?.[1] ?? match?.[2];
  return host?.toLowerCase().replace(/\.$/, '');
}

function listenOn(server: Server, address: ListenAddress): Promise<ListenAddress> {
  return (async () => {
    if (address.kind === 'unix') await clearStaleSocket(address.path);
    return new Promise<ListenAddress>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => reject(listenError(error, address));
      server.once('error', onError);
      const onListening = () => {
        server.off('error', onError);
        const bound = server.address();
        if (address.kind === 'unix') {
          // Only this user may connect; the token is checked on top.
          chmod(address.path, 0o600).then(() => resolve(address), (error: NodeJS.ErrnoException) => reject(listenError(error, address)));
        } else if (bound && typeof bound === 'object') resolve({ kind: 'tcp', host: address.host, port: bound.port });
        else reject(new TetherError('INTERNAL', 'the server has no address after listening'));
      };
      if (address.kind === 'unix') {
        // The socket file is created by bind(), synchronously inside listen(): a umask keeps it
        // from ever being reachable by others, even before the chmod.
        const previous = process.umask(0o177);
        try {
          server.listen(address.path, onListening);
        } finally {
          process.umask(previous);
        }
      } else server.listen(address.port, address.host, onListening);
    });
  })();
}

function listenError(error: NodeJS.ErrnoException, address: ListenAddress): TetherError {
  const where = address.kind === 'unix' ? address.path : `${address.host}:${address.port}`;
  if (error.code === 'EADDRINUSE') return new TetherError('INVALID_ARGUMENT', `address already in use: ${where}`, { address: where }, { cause: error });
  if (error.code === 'EACCES' || error.code === 'EPERM') {
    return new TetherError('PERMISSION_DENIED', `not allowed to listen on ${where}`, { address: where }, { cause: error });
  }
  return new TetherError('INVALID_ARGUMENT', `cannot listen on ${where}: ${error.code ?? error.message}`, { address: where }, { cause: error });
}

/** A socket file left by a daemon that died is removed; a live one (or any other file) is not. */
async function clearStaleSocket(path: string): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw listenError(error as NodeJS.ErrnoException, { kind: 'unix', path });
  }
  if (!info.isSocket()) throw new TetherError('INVALID_ARGUMENT', `cannot listen on ${path}: it exists and is not a socket`, { address: path });
  const live = await new Promise<boolean>((resolve, reject) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(false);
      else reject(listenError(error, { kind: 'unix', path }));
    });
  });
  if (live) throw new TetherError('INVALID_ARGUMENT', `address already in use: a daemon is listening on ${path}`, { address: path });
  await unlink(path).catch(() => undefined);
}

async function removeSocketFile(path: string, ino: number | undefined): Promise<void> {
  try {
    // Remove only our own socket, not one a newer daemon has put there since.
    if ((await lstat(path)).ino === ino) await unlink(path);
  } catch {
    // already gone
  }
}
