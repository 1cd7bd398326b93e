import { connect as netConnect, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { pipeline, type Duplex } from 'node:stream';
import WebSocket from 'ws';
import { TetherError } from '@tether/core';
import { parseListenAddress, type AcceptOptions, type LogEntry } from '@tether/transport-ws';
import { checkCredential, checkName } from './credentials.js';
import { CONTROL_CLOSE, ControlMessage, relayBase, relayEndpoint } from './relayProtocol.js';
import { dialSession } from './relayDial.js';

export interface RelayAgentOptions {
  /** The relay: `wss://host:port` (`ws://` on loopback). */
  readonly relay: string;
  /** The environment this daemon registers. */
  readonly environment: string;
  /** The enrolment credential the relay's operator issued for the environment. */
  readonly credential: string;
  /** The daemon's TLS identity (see `loadOrCreateIdentity`): clients pin its certificate's fingerprint. */
  readonly identity: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /**
   * The daemon in this process (`startDaemon`'s `Daemon`, or a `WsListener` without TLS): each
   * paired session, once decrypted, is handed to it (`accept(stream, { source: 'relay' })`) and
   * the daemon checks its token and serves it like any other client, its bytes going through no
   * other socket. Give this or `target`.
   */
  readonly listener?: { accept(stream: Duplex, options?: AcceptOptions): void };
  /**
   * Where a daemon in another process serves (a Unix socket path or `host:port`): each paired
   * session, once decrypted, is connected there and that daemon checks its token and serves it
   * like any other client. Costs a copy of every byte through that socket; for a daemon in this
   * process use `listener`. Give this or `listener`.
   */
  readonly target?: string;
  /** CA certificates to trust for a `wss://` relay with a private certificate. Default: the system's. */
  readonly relayCa?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Reconnect delays: the first is `initialDelayMs` (1 s), doubling up to `maxDelayMs` (30 s), each with jitter; back to the first once a registration stayed up `healthyAfterMs` (10 s). */
  readonly backoff?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number; readonly healthyAfterMs?: number };
  /** Give up after this many refusals (401/403) in a row; the relay refused the credential. Default 3. */
  readonly maxAuthFailures?: number;
  /** Ping the relay this often; a registration whose ping gets no answer by the next one is dropped and made again. Default 15 000 ms. */
  readonly pingIntervalMs?: number;
  /** A pairing must complete its TLS handshake within this long. Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Most sessions through the relay at once; pairings beyond it are not answered. Default 256. */
  readonly maxSessions?: number;
  /** Where log lines go. Default nowhere. Never carries a credential. */
  readonly log?: (entry: LogEntry) => void;
}

/** Where the agent is: dialling, holding a registration, waiting to retry, or stopped for good. */
export type RelayAgentState = 'connecting' | 'registered' | 'waiting' | 'stopped';


/**
 * The daemon's side of the cloud transport: keeps a registration of the environment with the
 * relay and answers each pairing with a fresh outbound connection, over which it runs a TLS 1.3
 * server with its identity; the decrypted stream is handed to the daemon's listener (`listener`,
 * in this process) or connected to its address (`target`), so the daemon's token is checked and
 * its RPC served exactly as for a direct client.
 *
 * Registration is kept alive: on a drop it is made again after 1 s, doubling to 30 s, with
 * jitter; refusals (401/403, or a revocation) are retried `maxAuthFailures` times in a row and
 * then the agent stops with `UNAUTHORIZED` in `stopped`. Sessions already paired are not
 * affected by a lost registration, and the daemon's executions never are.
 */
export class RelayAgent {
  /** Resolves when the agent stops: with the reason when it gave up, undefined after `close()`. */
  readonly stopped: Promise<TetherError | undefined>;
  /** Registrations made so far (a re-registration after a drop counts). */
  registrations = 0;

  readonly #options: RelayAgentOptions;
  readonly #log: (entry: LogEntry) => void;
  readonly #tls: TlsServer;
  readonly #sessions = new Set<{ destroy(): void }>();
  #state: RelayAgentState = 'connecting';
  #control: WebSocket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #authFailures = 0;
  #stop!: (reason: TetherError | undefined) => void;
  #listeners = new Set<(state: RelayAgentState) => void>();

  private constructor(options: RelayAgentOptions) {
    this.#options = options;
    this.#log = options.log ?? (() => undefined);
    const handshakeTimeout = options.handshakeTimeoutMs ?? 10_000;
    this.#tls = createTlsServer({ cert: options.identity.cert, key: options.identity.key, minVersion: 'TLSv1.3', handshakeTimeout }, (tls) => this.#serve(tls));
    this.#tls.on('tlsClientError', (error: NodeJS.ErrnoException, tls: TLSSocket) => {
      this.#log({ level: 'warn', msg: 'session through the relay failed', environment: options.environment, error: error.code ?? error.message });
      tls.destroy();
    });
    this.stopped = new Promise((resolve) => (this.#stop = resolve));
  }

  /** Validates the options and starts registering (in the background: watch `state` / `stopped`). */
  static start(options: RelayAgentOptions): RelayAgent {
    relayBase(options.relay);
    checkName(options.environment, 'the environment');
    checkCredential(options.credential, 'the relay credential');
    if ((options.listener === undefined) === (options.target === undefined)) {
      throw new TetherError('INVALID_ARGUMENT', 'give the relay agent either a listener (a daemon in this process) or a target (its address)');
    }
    if (options.listener !== undefined && typeof options.listener.accept !== 'function') throw new TetherError('INVALID_ARGUMENT', 'the listener must have an accept(stream) method');
    if (options.target !== undefined) parseListenAddress(options.target);
    const agent = new RelayAgent(options);
    agent.#connect();
    return agent;
  }

  get state(): RelayAgentState {
    return this.#state;
  }

  /** Sessions open through the relay now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Resolves once the agent is in `state` (at once if it is). */
  when(state: RelayAgentState): Promise<void> {
    if (this.#state === state) return Promise.resolve();
    return new Promise((resolve) => {
      const listener = (now: RelayAgentState) => {
        if (now !== state) return;
        this.#listeners.delete(listener);
        resolve();
      };
      this.#listeners.add(listener);
    });
  }

  /** Drops the registration and every session through the relay. Idempotent. */
  close(): void {
    if (this.#state === 'stopped') return;
    this.#finish(undefined);
  }

  #setState(state: RelayAgentState): void {
    this.#state = state;
    for (const listener of [...this.#listeners]) listener(state);
  }

  #finish(reason: TetherError | undefined): void {
    clearTimeout(this.#timer);
    this.#setState('stopped');
    const control = this.#control;
    this.#control = undefined;
    control?.removeAllListeners('close');
    control?.on('error', () => undefined);
    control?.terminate();
    for (const session of this.#sessions) session.destroy();
    this.#sessions.clear();
    if (reason) this.#log({ level: 'error', msg: 'relay registration stopped', code: reason.code, error: reason.message });
    this.#stop(reason);
  }

  #connect(): void {
    if (this.#state === 'stopped') return;
    this.#setState('connecting');
    const { relay, environment } = this.#options;
    const ws = new WebSocket(relayEndpoint(relay, environment, 'register'), {
      headers: { Authorization: `Bearer ${this.#options.credential}` },
      ca: this.#options.relayCa as string | Buffer | Array<string | Buffer> | undefined,
      handshakeTimeout: this.#options.handshakeTimeoutMs ?? 10_000,
      maxPayload: 64 * 1024,
      perMessageDeflate: false,
      followRedirects: false,
    });
    this.#control = ws;
    let openedAt: number | undefined;
    let refusal: { status: number; reason: string } | undefined;
    let closeInfo: { code: number; reason: string } | undefined;
    let alive = true;
    let heartbeat: NodeJS.Timeout | undefined;

    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body = (body + chunk).slice(0, 500)));
      res.on('end', () => {
        refusal = { status: res.statusCode ?? 0, reason: body.trim() };
        ws.terminate();
      });
      res.on('error', () => ws.terminate());
    });
    ws.on('error', (error: Error) => {
      if (!openedAt) this.#log({ level: 'warn', msg: 'cannot reach the relay', relay: relayBase(relay), error: (error as NodeJS.ErrnoException).code ?? error.message });
    });
    ws.once('open', () => {
      openedAt = Date.now();
      heartbeat = setInterval(() => {
        if (!alive) return ws.terminate();
        alive = false;
        ws.ping();
      }, this.#options.pingIntervalMs ?? 15_000);
      heartbeat.unref();
    });
    ws.on('pong', () => (alive = true));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      alive = true;
      if (isBinary) return;
      let message: ControlMessage;
      try {
        message = ControlMessage.parse(JSON.parse(data.toString('utf8')));
      } catch {
        return this.#log({ level: 'warn', msg: 'ignored a malformed message from the relay' });
      }
      if (message.type === 'registered') {
        this.registrations++;
        this.#authFailures = 0;
        this.#log({ level: 'info', msg: 'registered with the relay', relay: relayBase(relay), environment });
        this.#setState('registered');
      } else this.#pair(message.id);
    });
    ws.once('close', (code: number, reason: Buffer) => {
      clearInterval(heartbeat);
      closeInfo = { code, reason: reason.toString('utf8') };
      if (this.#control === ws) this.#control = undefined;
      if (this.#state === 'stopped') return;
      this.#afterDrop(openedAt, refusal, closeInfo);
    });
  }

  #afterDrop(openedAt: number | undefined, refusal: { status: number; reason: string } | undefined, closed: { code: number; reason: string }): void {
    const { environment } = this.#options;
    const refused = refusal && (refusal.status === 401 || refusal.status === 403);
    const revoked = closed.code === CONTROL_CLOSE.revoked;
    if (refused || revoked) {
      this.#authFailures++;
      const why = revoked ? closed.reason || 'the enrolment was revoked' : refusal!.reason || `HTTP ${refusal!.status}`;
      this.#log({ level: 'warn', msg: 'the relay refused the registration', environment, status: refusal?.status ?? closed.code, reason: why, failures: this.#authFailures });
      if (this.#authFailures >= (this.#options.maxAuthFailures ?? 3)) {
        return this.#finish(
          new TetherError(
            'UNAUTHORIZED',
            `unauthorized: the relay refused the enrolment credential of environment ${environment} ${this.#authFailures} times (${why}); ask the relay's operator for a new one (tether relay enroll --environment ${environment})`,
            { environment, status: refusal?.status ?? closed.code },
          ),
        );
      }
    } else if (refusal) {
      this.#log({ level: 'warn', msg: 'the relay refused the registration', environment, status: refusal.status, reason: refusal.reason });
    } else if (openedAt !== undefined) {
      this.#log({ level: 'warn', msg: 'lost the registration with the relay', environment, code: closed.code, reason: closed.reason });
    }
    const { initialDelayMs = 1_000, maxDelayMs = 30_000, healthyAfterMs = 10_000 } = this.#options.backoff ?? {};
    if (openedAt !== undefined && Date.now() - openedAt >= healthyAfterMs && !refused && !revoked) this.#attempt = 0;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    // "Equal jitter": half the delay fixed, half random, so daemons cut off together do not come back together.
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#log({ level: 'info', msg: 'retrying', environment, delayMs: Math.round(wait), ceilingMs: ceiling });
    this.#setState('waiting');
    this.#timer = setTimeout(() => this.#connect(), wait);
    this.#timer.unref();
  }

  /** Answers a pairing: a fresh connection to the relay, TLS server over it, the plaintext to the daemon. */
  #pair(id: string): void {
    const { relay, environment } = this.#options;
    if (this.#sessions.size >= (this.#options.maxSessions ?? 256)) {
      return this.#log({ level: 'warn', msg: 'pairing not answered: too many sessions', limit: this.#options.maxSessions ?? 256 });
    }
    let relayed: Socket | undefined;
    let closed = false;
    const session = {
      destroy: () => {
        closed = true;
        this.#sessions.delete(session);
        relayed?.destroy();
      },
    };
    this.#sessions.add(session);
    const timeoutMs = this.#options.handshakeTimeoutMs ?? 10_000;
    void dialSession(relay, `/v1/environments/${encodeURIComponent(environment)}/accept/${id}`, {
      credential: this.#options.credential,
      ca: this.#options.relayCa,
      timeoutMs,
    }).then((result) => {
      if (!('socket' in result)) {
        this.#log({ level: 'warn', msg: 'could not answer a pairing', environment, ...('status' in result ? { status: result.status, reason: result.body } : { error: result.error.code ?? result.error.message }) });
        return session.destroy();
      }
      relayed = result.socket;
      if (closed) return session.destroy();
      relayed.on('error', () => session.destroy());
      relayed.once('close', () => session.destroy());
      // The TLS server takes it from here (and its errors go to tlsClientError until the handshake is done).
      this.#tls.emit('connection', relayed);
    });
  }

  /** A session whose TLS handshake completed: its plaintext goes to the daemon's listener. */
  #serve(tls: TLSSocket): void {
    const { listener, target } = this.#options;
    if (listener) {
      // The daemon reads the decrypted stream itself: its upgrade, token check and limits, with no
      // copy. What breaks the session underneath (a TLS record that fails its check) is logged here.
      const failed = (error: string) => this.#log({ level: 'warn', msg: 'session through the relay failed', environment: this.#options.environment, error });
      tls.once('error', (error: NodeJS.ErrnoException) => {
        if (this.#state !== 'stopped') failed(error.code ?? error.message);
      });
      try {
        return listener.accept(tls, { source: 'relay' });
      } catch (error) {
        failed((error as Error).message);
        return void tls.destroy();
      }
    }
    const address = parseListenAddress(target!);
    const upstream = address.kind === 'unix' ? netConnect(address.path) : netConnect(address.port, address.host);
    upstream.setNoDelay?.(true);
    pipeline(tls, upstream, tls, (error) => {
      if (error && this.#state !== 'stopped') {
        this.#log({ level: 'warn', msg: 'session through the relay failed', environment: this.#options.environment, error: (error as NodeJS.ErrnoException).code ?? error.message });
      }
      tls.destroy();
      upstream.destroy();
    });
  }
}
