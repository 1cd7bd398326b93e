import { createHash } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { TetherError, type Channel } from '@tether/core';
import { connectWs, type KeepaliveOptions } from '@tether/transport-ws';
import { checkCredential, checkName } from './credentials.js';
import { normalizeFingerprint } from './daemonIdentity.js';
import { relayBase } from './relayProtocol.js';
import { dialSession } from './relayDial.js';

export interface ConnectCloudOptions {
  /** The relay: `wss://host:port` (`ws://` on loopback). */
  readonly relay: string;
  /** The environment the daemon registered. */
  readonly environment: string;
  /** This client's credential at the relay (`tether relay enroll --client NAME`). */
  readonly relayToken: string;
  /** The daemon's own token, checked by the daemon inside the encrypted session. */
  readonly token: string;
  /**
   * The pinned fingerprint of the daemon's certificate (`SHA256:…`). The session is refused,
   * before anything is sent through it, when the daemon presents another one, or when none is
   * pinned: nothing is trusted on first use.
   */
  readonly fingerprint: string | undefined;
  /** CA certificates to trust for a `wss://` relay with a private certificate. Default: the system's. */
  readonly relayCa?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Give up on the pairing, the TLS handshake and the upgrade after this long each. Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Keepalive of the session (end to end, through the relay). Default `connectWs`'s. */
  readonly keepalive?: KeepaliveOptions;
  readonly signal?: AbortSignal;
  /** The machine's name, for messages and the hint on an unknown fingerprint. */
  readonly machine?: string;
}


/**
 * Connects to a daemon through a relay and returns the session as a `Channel`:
 *
 * 1. an HTTP(S) upgrade to the relay's `…/environments/<env>/connect` (`Upgrade: tether-relay/1`),
 *    authenticated with the client's relay credential; the relay pairs it with a fresh
 *    connection from the environment's daemon and splices the two;
 * 2. TLS 1.3 through that relayed stream, the daemon's certificate checked against `fingerprint`
 *    (unknown or different → `UNAUTHORIZED` with the fingerprint presented and how to trust it);
 * 3. the daemon's WebSocket protocol inside the TLS session (`connectWs({ stream })`), with the
 *    daemon's token.
 *
 * The relay sees only TLS records. Failures carry `details.relayOk`: whether the relay answered
 * and accepted the client credential (what `machine check` reports as `relay_ok`).
 */
export async function connectCloud(options: ConnectCloudOptions): Promise<Channel> {
  const base = relayBase(options.relay);
  checkName(options.environment, 'the environment');
  checkCredential(options.relayToken, 'the relay token');
  const name = options.machine ?? options.environment;
  const where = `environment ${options.environment} at ${base}`;
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
  if (options.fingerprint !== undefined) normalizeFingerprint(options.fingerprint);

  const relayed = await dialRelay(options, where, timeoutMs);
  const tls = await startTls(relayed, options, where, name, timeoutMs);
  try {
    return await connectWs('ws://localhost/', {
      token: options.token,
      stream: tls,
      display: `the daemon of ${where}`,
      handshakeTimeoutMs: timeoutMs,
      keepalive: options.keepalive,
      signal: options.signal,
    });
  } catch (error) {
    tls.destroy();
    if (error instanceof TetherError) throw new TetherError(error.code, error.message, { ...error.details, relayOk: true }, { cause: error });
    throw error;
  }
}

/** Opens the client's leg to the relay and resolves once paired, as a byte stream. */
async function dialRelay(options: ConnectCloudOptions, where: string, timeoutMs: number): Promise<Duplex> {
  if (options.signal?.aborted) throw new TetherError('ABORTED', 'connecting was aborted');
  // The relay answers once the daemon has joined: the pairing is part of the handshake.
  const result = await dialSession(options.relay, `/v1/environments/${encodeURIComponent(options.environment)}/connect`, {
    credential: options.relayToken,
    ca: options.relayCa,
    timeoutMs: timeoutMs * 2,
    signal: options.signal,
  });
  if ('socket' in result) return result.socket;
  if ('status' in result) throw relayRefusal(result.status, result.body, where);
  if (result.error.code === 'ABORT_ERR') throw new TetherError('ABORTED', 'connecting was aborted');
  throw dialError(result.error, where);
}

/** TLS 1.3 as the client through the relayed stream; resolves only once the daemon's certificate matched the pin. */
function startTls(relayed: Duplex, options: ConnectCloudOptions, where: string, machine: string, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // The certificate is self-signed: what is checked is its fingerprint, below, before any byte is sent.
    const tls = tlsConnect({ socket: relayed, minVersion: 'TLSv1.3', rejectUnauthorized: false, servername: undefined });
    let settled = false;
    const fail = (error: TetherError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      tls.destroy();
      relayed.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new TetherError('CONNECTION_LOST', `connection reset by peer: the TLS handshake with the daemon of ${where} did not complete within ${timeoutMs} ms`, { relayOk: true })),
      timeoutMs,
    );
    const onAbort = () => fail(new TetherError('ABORTED', 'connecting was aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    tls.once('error', (error: NodeJS.ErrnoException) =>
      fail(new TetherError('CONNECTION_LOST', `connection reset by peer: the TLS session with the daemon of ${where} failed (${error.code ?? error.message})`, { relayOk: true, errno: error.code }, { cause: error })),
    );
    relayed.once('close', () => fail(new TetherError('CONNECTION_LOST', `connection reset by peer: the relay closed the session with ${where} during the TLS handshake`, { relayOk: true })));
    tls.once('secureConnect', () => {
      if (settled) return;
      const presented = fingerprintOf(tls);
      const pinned = options.fingerprint === undefined ? undefined : normalizeFingerprint(options.fingerprint);
      if (presented === undefined || presented !== pinned) return fail(pinFailure(machine, where, presented, pinned));
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      // From here the WebSocket inside reports failures (as a closed connection); an error
      // emitted before it listens must not go unhandled.
      tls.removeAllListeners('error');
      tls.on('error', () => undefined);
      resolve(tls);
    });
  });
}

function fingerprintOf(tls: TLSSocket): string | undefined {
  const raw = tls.getPeerX509Certificate()?.raw;
  return raw === undefined ? undefined : `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

function pinFailure(machine: string, where: string, presented: string | undefined, pinned: string | undefined): TetherError {
  const command = `tether machine trust --machine ${machine} --fingerprint ${presented}`;
  const trust = `check it on the daemon's host (tether daemon fingerprint), then trust it: ${command}`;
  if (pinned === undefined) {
    return new TetherError('UNAUTHORIZED', `unauthorized: the daemon of ${where} is not trusted yet: it presented ${presented}; ${trust}`, {
      relayOk: true,
      reason: 'fingerprint-unknown',
      fingerprint: presented,
      command,
    });
  }
  return new TetherError(
    'UNAUTHORIZED',
    `unauthorized: the daemon of ${where} presented ${presented}, not the pinned ${pinned}: the relay may have paired you with another daemon, or the daemon's identity changed. If you know it changed, ${trust}`,
    { relayOk: true, reason: 'fingerprint-changed', fingerprint: presented, pinned, command },
  );
}

function relayRefusal(status: number, body: string, where: string): TetherError {
  const reason = body.length > 0 ? body : `HTTP ${status}`;
  if (status === 401) return new TetherError('UNAUTHORIZED', `unauthorized: the relay refused the client credential (${reason})`, { status, relayOk: false });
  if (status === 403) return new TetherError('UNAUTHORIZED', `unauthorized: ${reason.replace(/^unauthorized: /, '')}`, { status, relayOk: false });
  if (status === 404) return new TetherError('UNAUTHORIZED', `unauthorized: ${reason} (${where})`, { status, relayOk: true, reason: 'not-enrolled' });
  if (status === 410) return new TetherError('UNAUTHORIZED', `unauthorized: ${reason}`, { status, relayOk: true, reason: 'revoked' });
  if (status === 503 || status === 504) return new TetherError('CONNECTION_LOST', `connection refused: ${reason}`, { status, relayOk: true });
  return new TetherError('CONNECTION_LOST', `connection refused: the relay answered HTTP ${status} for ${where} (${reason})`, { status, relayOk: false });
}

function dialError(error: NodeJS.ErrnoException, where: string): TetherError {
  if (error.code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(error.code)) {
    return new TetherError('UNAUTHORIZED', `unauthorized: the relay's TLS certificate is not trusted (${error.code}); set relay_ca_file for a private CA`, { errno: error.code, relayOk: false }, { cause: error });
  }
  const refused = error.code === 'ECONNREFUSED';
  return new TetherError(
    'CONNECTION_LOST',
    refused ? `connection refused: nothing is listening at the relay for ${where}` : `connection reset by peer: could not reach the relay for ${where} (${error.code ?? error.message})`,
    { errno: error.code, relayOk: false },
    { cause: error },
  );
}
