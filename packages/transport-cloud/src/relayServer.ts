import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { TetherError, isTetherError } from '@tether/core';
import { loadOrCreateToken, parseListenAddress, TokenVerifier, type ListenAddress, type LogEntry } from '@tether/transport-ws';
import { bearer, NAME_PATTERN, type CredentialKind } from './credentials.js';
import { RelayRegistry } from './relayRegistry.js';
import { CONTROL_CLOSE, type ControlMessage } from './relayProtocol.js';
import { SESSION_PROTOCOL } from './relayDial.js';

/** One environment as `relay status` lists it. */
export interface EnvironmentStatus {
  readonly name: string;
  /** A daemon holds a registration for it now. */
  readonly online: boolean;
  /** When its daemon was last heard from (now, while online); null if never. */
  readonly last_seen: string | null;
  /** Client sessions paired with it now. */
  readonly sessions: number;
}

/** Bytes forwarded between a paired client and daemon, as a tap sees them. */
export interface TappedMessage {
  readonly environment: string;
  /** Numbers the relay's paired sessions, from 1. */
  readonly session: number;
  readonly direction: 'to-daemon' | 'to-client';
  /** A chunk of bytes as it arrived (of the end-to-end encrypted TLS stream; chunks need not align with TLS records). */
  readonly data: Buffer;
}

/**
 * Sees every message the relay forwards and decides what is sent on: nothing returned sends the
 * message unchanged; a buffer replaces it; an array sends each of its buffers (a replay); an
 * empty array drops it. For tests and diagnostics: what it can see is ciphertext.
 */
export type RelayTap = (message: TappedMessage) => Buffer | readonly Buffer[] | void;

export interface RelayServerOptions {
  /** `host:port`; port 0 for any free port. */
  readonly listen: string;
  /** The relay's state: `registry.json` (environments, clients, credential hashes) and `admin-token`. Created (mode 0700) if missing. */
  readonly dataDir: string;
  /** Serve `wss://`/`https://` with this certificate and key (PEM). Without it the relay listens on loopback only. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** The operator's token for enrol/revoke/status. Default: `<dataDir>/admin-token`, created (0600) on first start. */
  readonly adminToken?: string;
  /** How long a client's connection waits for the daemon to answer a pairing. Default 10 000 ms. */
  readonly pairTimeoutMs?: number;
  /** Most pairings waiting for one environment's daemon at once; more get 503. Default 64. */
  readonly maxPendingPairs?: number;
  /** Most open WebSocket connections (registrations and both ends of sessions). Default 10 000. */
  readonly maxConnections?: number;
  /** Each connection is pinged this often and dropped when a ping has no answer by the next one. Default 15 000 ms. */
  readonly pingIntervalMs?: number;
  /** Sees (and may alter) forwarded messages. Default none. */
  readonly tap?: RelayTap;
  /** Where log lines go. Default nowhere. Never carries a credential. */
  readonly log?: (entry: LogEntry) => void;
}

/** A daemon's registration: its control connection. */
interface Registration {
  readonly environment: string;
  readonly ws: WebSocket;
}

interface PendingPair {
  readonly id: string;
  readonly environment: string;
  readonly client: string;
  readonly registration: Registration;
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly timer: NodeJS.Timeout;
}

interface Session {
  readonly id: number;
  readonly environment: string;
  readonly client: string;
  readonly clientSocket: Duplex;
  readonly daemonSocket: Duplex;
}

const ROUTE = /^\/v1\/(environments|clients)(?:\/([^/]+)(?:\/(register|connect|enroll|revoke|accept)(?:\/([A-Za-z0-9_-]{16,64}))?)?)?\/?$/;

/**
 * The rendezvous relay. Daemons behind NAT dial out and register an environment with an
 * enrolment credential; clients connect to an environment with a client credential; the relay
 * asks the environment's daemon to open a fresh connection for the pairing and then forwards
 * messages between the two, knowing nothing of what they carry (a TLS session between client and
 * daemon). One process, state in one JSON file; see the package README for the protocol.
 *
 * ```ts
 * const relay = await RelayServer.start({ listen: '127.0.0.1:8443', dataDir: '/srv/relay' });
 * const { credential } = await relay.enroll('environment', 'gpu1'); // give it to gpu1's daemon
 * ```
 */
export class RelayServer {
  readonly address: ListenAddress & { kind: 'tcp' };
  /** `ws://host:port` or `wss://host:port`. */
  readonly url: string;
  /** Where the admin token lives (undefined when given as an option). */
  readonly adminTokenFile: string | undefined;
  readonly registry: RelayRegistry;

  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #options: RelayServerOptions;
  readonly #admin: TokenVerifier;
  readonly #registrations = new Map<string, Registration>();
  readonly #pending = new Map<string, PendingPair>();
  readonly #sessions = new Set<Session>();
  readonly #alive = new WeakMap<WebSocket, boolean>();
  readonly #sockets = new Set<WebSocket>();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #log: (entry: LogEntry) => void;
  #sessionCount = 0;
  #closing: Promise<void> | undefined;

  private constructor(init: {
    server: Server;
    wss: WebSocketServer;
    address: ListenAddress & { kind: 'tcp' };
    url: string;
    options: RelayServerOptions;
    admin: TokenVerifier;
    adminTokenFile: string | undefined;
    registry: RelayRegistry;
  }) {
    this.#server = init.server;
    this.#wss = init.wss;
    this.address = init.address;
    this.url = init.url;
    this.#options = init.options;
    this.#admin = init.admin;
    this.adminTokenFile = init.adminTokenFile;
    this.registry = init.registry;
    this.#log = init.options.log ?? (() => undefined);
    this.#heartbeat = setInterval(() => this.#sweep(), init.options.pingIntervalMs ?? 15_000);
    this.#heartbeat.unref();
  }

  /** Opens the registry and listens. Fails with `INVALID_ARGUMENT` for a bad or busy address, or a non-loopback address without TLS. */
  static async start(options: RelayServerOptions): Promise<RelayServer> {
    const requested = parseListenAddress(options.listen);
    if (requested.kind !== 'tcp') throw new TetherError('INVALID_ARGUMENT', 'the relay listens on host:port');
    if (!options.tls && !isLoopback(requested.host)) {
      throw new TetherError(
        'INVALID_ARGUMENT',
        `a relay without TLS listens on loopback only (credentials would cross the network in the clear): pass a certificate and key, or listen on 127.0.0.1 behind a TLS proxy`,
        { listen: options.listen },
      );
    }
    const dataDir = resolve(options.dataDir);
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    let adminToken = options.adminToken;
    let adminTokenFile: string | undefined;
    if (adminToken === undefined) {
      adminTokenFile = join(dataDir, 'admin-token');
      adminToken = (await loadOrCreateToken(adminTokenFile)).token;
    }
    const admin = new TokenVerifier(adminToken);
    const registry = await RelayRegistry.open(join(dataDir, 'registry.json'));

    const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }) : createHttpServer();
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false, clientTracking: false });
    const port = await new Promise<number>((done, fail) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        fail(new TetherError('INVALID_ARGUMENT', error.code === 'EADDRINUSE' ? `address already in use: ${options.listen}` : `cannot listen on ${options.listen}: ${error.code ?? error.message}`, {}, { cause: error })),
      );
      server.listen(requested.port, requested.host, () => done((server.address() as { port: number }).port));
    });
    const address = { kind: 'tcp' as const, host: requested.host, port };
    const host = isIP(requested.host) === 6 ? `[${requested.host}]` : requested.host === '0.0.0.0' ? '127.0.0.1' : requested.host;
    const url = `${options.tls ? 'wss' : 'ws'}://${host}:${port}`;
    const relay = new RelayServer({ server, wss, address, url, options, admin, adminTokenFile, registry });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void relay.#onRequest(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => relay.#onUpgrade(req, socket, head));
    server.on('clientError', (_error, socket) => socket.destroy());
    relay.#log({ level: 'info', msg: 'relay listening', url });
    return relay;
  }

  /** Enrols an environment or a client; the credential is returned once and stored only as a hash. */
  enroll(kind: CredentialKind, name: string, options: { rotate?: boolean } = {}): Promise<{ credential: string; rotated: boolean }> {
    return this.registry.enroll(kind, name, options).then((result) => {
      this.#log({ level: 'info', msg: 'enrolled', kind, name, rotated: result.rotated });
      if (result.rotated) this.#disconnect(kind, name, CONTROL_CLOSE.revoked, 'the credential was rotated');
      return result;
    });
  }

  /**
   * Revokes a credential: its holder's registration and sessions are closed at once and refused
   * from then on. Returns whether it was enrolled, and how many connections were closed.
   */
  async revoke(kind: CredentialKind, name: string): Promise<{ revoked: boolean; disconnected: number }> {
    const revoked = await this.registry.revoke(kind, name);
    const disconnected = revoked ? this.#disconnect(kind, name, CONTROL_CLOSE.revoked, `the enrolment of ${kind} ${name} was revoked`) : 0;
    this.#log({ level: 'info', msg: 'revoked', kind, name, revoked, disconnected });
    return { revoked, disconnected };
  }

  /** Every environment ever enrolled (revoked ones left out), online or not. */
  status(filter?: 'online' | 'offline'): EnvironmentStatus[] {
    const now = new Date().toISOString();
    const sessions = new Map<string, number>();
    for (const session of this.#sessions) sessions.set(session.environment, (sessions.get(session.environment) ?? 0) + 1);
    return this.registry
      .environments()
      .filter(([, entry]) => entry.revoked_at === null)
      .map(([name, entry]) => {
        const online = this.#registrations.has(name);
        return { name, online, last_seen: online ? now : entry.last_seen, sessions: sessions.get(name) ?? 0 };
      })
      .filter((e) => filter === undefined || e.online === (filter === 'online'));
  }

  /** Registrations held now. */
  get online(): number {
    return this.#registrations.size;
  }

  /** Paired sessions open now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Stops listening and closes every connection (daemons re-register with a restarted relay). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#heartbeat);
      const closed = new Promise<void>((done) => this.#server.close(() => done()));
      for (const pending of this.#pending.values()) this.#failPending(pending, 503, 'the relay is shutting down');
      for (const [name, registration] of this.#registrations) {
        this.registry.seen(name);
        registration.ws.close(1001, 'the relay is shutting down');
      }
      for (const ws of this.#sockets) ws.terminate();
      for (const session of this.#sessions) {
        session.clientSocket.destroy();
        session.daemonSocket.destroy();
      }
      this.#server.closeAllConnections();
      await closed;
      this.#wss.close();
      await this.registry.flush();
      this.#log({ level: 'info', msg: 'relay stopped' });
    })();
    return this.#closing;
  }

  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://relay');
    const route = ROUTE.exec(url.pathname);
    const reply = (status: number, body: unknown) => {
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      res.end(text);
    };
    const error = (status: number, code: string, message: string) => reply(status, { error: { code, message } });
    req.resume();
    if (!this.#admin.verifyAuthorization(req.headers.authorization)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return error(401, 'UNAUTHORIZED', 'unauthorized: the relay operator token is required');
    }
    if (!route) return error(404, 'INVALID_ARGUMENT', `no such relay method: ${req.method} ${url.pathname}`);
    const [, table, name, verb] = route;
    const kind: CredentialKind = table === 'clients' ? 'client' : 'environment';
    try {
      if (req.method === 'GET' && table === 'environments' && name === undefined) {
        const filter = url.searchParams.get('status');
        if (filter !== null && filter !== 'online' && filter !== 'offline') return error(400, 'INVALID_ARGUMENT', 'status must be online or offline');
        return reply(200, { environments: this.status(filter ?? undefined) });
      }
      if (req.method === 'POST' && name !== undefined && verb === 'enroll') {
        const { credential, rotated } = await this.enroll(kind, name, { rotate: url.searchParams.get('rotate') === '1' });
        return reply(200, { kind, name, credential, rotated });
      }
      if (req.method === 'POST' && name !== undefined && verb === 'revoke') {
        return reply(200, { kind, name, ...(await this.revoke(kind, name)) });
      }
      return error(404, 'INVALID_ARGUMENT', `no such relay method: ${req.method} ${url.pathname}`);
    } catch (failure) {
      if (isTetherError(failure, 'PATH_EXISTS')) return error(409, failure.code, failure.message);
      if (isTetherError(failure, 'INVALID_ARGUMENT')) return error(400, failure.code, failure.message);
      this.#log({ level: 'error', msg: 'relay method failed', error: failure instanceof Error ? failure.message : String(failure) });
      return error(500, 'INTERNAL', 'the relay could not carry out the request');
    }
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://relay');
    const route = ROUTE.exec(url.pathname);
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const refuse = (status: number, reason: string) => refuseUpgrade(socket, status, reason, (entry) => this.#log({ ...entry, remote }));
    if (this.#closing) return refuse(503, 'the relay is shutting down');
    if (this.#sockets.size + this.#pending.size + 2 * this.#sessions.size >= (this.#options.maxConnections ?? 10_000)) return refuse(503, 'the relay has too many connections');
    if (url.searchParams.has('token') || url.searchParams.has('access_token')) return refuse(400, 'credentials are not accepted in the URL; send Authorization: Bearer <credential>');
    if (!route || route[1] !== 'environments' || route[2] === undefined || !['register', 'accept', 'connect'].includes(route[3] ?? '')) {
      return refuse(404, 'no such relay endpoint');
    }
    const environment = route[2];
    const verb = route[3] as 'register' | 'accept' | 'connect';
    if (!NAME_PATTERN.test(environment)) return refuse(400, 'malformed environment name');
    const credential = bearer(req.headers.authorization);

    const session = () => (req.headers.upgrade ?? '').toLowerCase() === SESSION_PROTOCOL;
    if (verb === 'connect') {
      const { verdict, client } = this.registry.verifyClient(credential);
      if (verdict === 'wrong') return refuse(401, 'unauthorized: a valid client credential is required');
      if (verdict === 'revoked') return refuse(403, `unauthorized: the credential of client ${client} was revoked`);
      if (!session()) return refuse(400, `a session is opened with Upgrade: ${SESSION_PROTOCOL}`);
      return this.#pair(environment, client!, req, socket, head, refuse);
    }
    const verdict = this.registry.verifyEnvironment(environment, credential);
    if (verdict === 'wrong') return refuse(401, `unauthorized: a valid enrolment credential for environment ${environment} is required`);
    if (verdict === 'revoked') return refuse(403, `unauthorized: the enrolment of environment ${environment} was revoked`);
    if (verb === 'register') return this.#register(environment, req, socket, head, remote);
    if (!session()) return refuse(400, `a session is opened with Upgrade: ${SESSION_PROTOCOL}`);

    const pending = route[4] === undefined ? undefined : this.#pending.get(route[4]);
    if (!pending || pending.environment !== environment) return refuse(404, 'no such pairing (it expired or was never asked for)');
    this.#pending.delete(pending.id);
    clearTimeout(pending.timer);
    if (pending.socket.destroyed) return refuse(410, 'the client went away before the pairing completed');
    this.#join(pending, socket, head);
  }

  #register(environment: string, req: IncomingMessage, socket: Duplex, head: Buffer, remote: string): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.#closing) return ws.terminate();
      const previous = this.#registrations.get(environment);
      const registration: Registration = { environment, ws };
      this.#registrations.set(environment, registration);
      this.#track(ws);
      if (previous) previous.ws.close(CONTROL_CLOSE.replaced, 'replaced by a newer registration of the environment');
      this.registry.seen(environment);
      void this.registry.flush().catch(() => undefined);
      this.#send(ws, { type: 'registered', environment });
      this.#log({ level: 'info', msg: 'environment online', environment, remote });
      ws.on('message', () => undefined);
      ws.on('pong', () => this.registry.seen(environment));
      ws.once('close', () => {
        if (this.#registrations.get(environment) !== registration) return;
        this.#registrations.delete(environment);
        for (const pending of this.#pending.values()) {
          if (pending.registration === registration) this.#failPending(pending, 503, `environment ${environment} went offline`);
        }
        this.registry.seen(environment);
        void this.registry.flush().catch(() => undefined);
        this.#log({ level: 'info', msg: 'environment offline', environment });
      });
    });
  }

  #pair(environment: string, client: string, req: IncomingMessage, socket: Duplex, head: Buffer, refuse: (status: number, reason: string) => void): void {
    const entry = this.registry.environment(environment);
    if (!entry) return refuse(404, `environment ${environment} is not enrolled at this relay`);
    if (entry.revoked_at !== null) return refuse(410, `environment ${environment} is no longer enrolled at this relay (its enrolment was revoked)`);
    const registration = this.#registrations.get(environment);
    if (!registration) return refuse(503, `environment ${environment} is offline (last seen ${entry.last_seen ?? 'never'})`);
    let waiting = 0;
    for (const pending of this.#pending.values()) if (pending.environment === environment) waiting++;
    if (waiting >= (this.#options.maxPendingPairs ?? 64)) return refuse(503, `too many pairings waiting for environment ${environment}`);
    const id = randomBytes(18).toString('base64url');
    const timer = setTimeout(() => {
      const pending = this.#pending.get(id);
      if (pending) this.#failPending(pending, 504, `the daemon of environment ${environment} did not answer the pairing in time`);
    }, this.#options.pairTimeoutMs ?? 10_000);
    timer.unref();
    const pending: PendingPair = { id, environment, client, registration, req, socket, head, timer };
    this.#pending.set(id, pending);
    socket.once('close', () => {
      if (this.#pending.get(id) !== pending) return;
      clearTimeout(timer);
      this.#pending.delete(id);
    });
    this.#send(registration.ws, { type: 'pair', id });
  }

  /** Both legs answered `101`; from then on the relay splices their bytes together, as they are. */
  #join(pending: PendingPair, daemonSocket: Duplex, daemonHead: Buffer): void {
    const { socket: clientSocket, head: clientHead } = pending;
    const session: Session = { id: ++this.#sessionCount, environment: pending.environment, client: pending.client, clientSocket, daemonSocket };
    this.#sessions.add(session);
    const switched = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SESSION_PROTOCOL}\r\n\r\n`;
    for (const socket of [clientSocket, daemonSocket]) {
      (socket as Socket).setNoDelay?.(true);
      (socket as Socket).setKeepAlive?.(true, 30_000);
      socket.write(switched);
    }
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.#sessions.delete(session);
      clientSocket.destroy();
      daemonSocket.destroy();
    };
    // Once both sides are closed, the session is over whichever way it ended.
    let open = 2;
    for (const socket of [clientSocket, daemonSocket]) socket.once('close', () => --open === 0 && end());
    this.#forward(session, clientSocket, daemonSocket, 'to-daemon', end);
    this.#forward(session, daemonSocket, clientSocket, 'to-client', end);
    if (clientHead.length > 0) clientSocket.unshift(clientHead);
    if (daemonHead.length > 0) daemonSocket.unshift(daemonHead);
    this.#log({ level: 'info', msg: 'paired', environment: pending.environment, client: pending.client, session: session.id });
  }

  /** Forwards bytes from `from` to `to` as they are, pausing `from` while `to` cannot take more. */
  #forward(session: Session, from: Duplex, to: Duplex, direction: TappedMessage['direction'], end: () => void): void {
    const tap = this.#options.tap;
    from.on('data', (data: Buffer) => {
      const out = tap ? tap({ environment: session.environment, session: session.id, direction, data }) : undefined;
      const pieces = out === undefined ? [data] : Buffer.isBuffer(out) ? [out] : (out as readonly Buffer[]);
      let more = true;
      for (const piece of pieces) more = to.write(piece) && more;
      if (!more) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    // A clean end is passed on as one, after what is still queued for the other side (which may
    // go on sending); a reset or an error ends both at once.
    from.once('end', () => to.end());
    from.once('error', end);
    from.once('close', () => {
      if (!from.readableEnded) return end();
      to.end();
      setTimeout(end, 5_000).unref();
    });
  }

  /** Closes the registration and sessions of an environment, or a client's sessions. */
  #disconnect(kind: CredentialKind, name: string, code: number, reason: string): number {
    let closed = 0;
    if (kind === 'environment') {
      const registration = this.#registrations.get(name);
      if (registration) {
        registration.ws.close(code, reason);
        closed++;
      }
      for (const pending of this.#pending.values()) if (pending.environment === name) this.#failPending(pending, 410, reason);
    }
    for (const session of this.#sessions) {
      if ((kind === 'environment' ? session.environment : session.client) !== name) continue;
      session.clientSocket.destroy();
      session.daemonSocket.destroy();
      closed++;
    }
    return closed;
  }

  #failPending(pending: PendingPair, status: number, reason: string): void {
    clearTimeout(pending.timer);
    this.#pending.delete(pending.id);
    refuseUpgrade(pending.socket, status, reason, this.#log);
  }

  #send(ws: WebSocket, message: ControlMessage): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  #track(ws: WebSocket): void {
    this.#sockets.add(ws);
    this.#alive.set(ws, true);
    ws.on('pong', () => this.#alive.set(ws, true));
    ws.on('error', () => undefined);
    ws.once('close', () => this.#sockets.delete(ws));
  }

  /** One timer for every connection: drop those that did not answer the last ping, ping the rest. */
  #sweep(): void {
    for (const ws of this.#sockets) {
      if (!this.#alive.get(ws)) {
        ws.terminate();
        continue;
      }
      this.#alive.set(ws, false);
      ws.ping();
    }
  }
}

function refuseUpgrade(socket: Duplex, status: number, reason: string, log: (entry: LogEntry) => void): void {
  log({ level: 'warn', msg: 'connection refused', status, reason });
  if (socket.destroyed) return;
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `${status === 401 ? 'WWW-Authenticate: Bearer\r\n' : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1_000).unref();
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
