import { TetherError, isTetherError } from '@tether/core';

/** An error from ssh2, which tags its errors with a `level` (and socket errors with an errno `code`). */
type Ssh2Error = Error & { level?: string; code?: string | number; reason?: number | string };

/** Why a channel could not be opened (RFC 4254 §5.1). */
const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;
const OPEN_CONNECT_FAILED = 2;

/**
 * Translates an ssh2 connection error into a core code, keeping it as `cause`:
 * authentication → `UNAUTHORIZED` ("unauthorized: …"), a refused or dropped socket, a timeout or a
 * protocol failure → `CONNECTION_LOST` ("connection refused: …" / "connection reset by peer: …").
 */
export function translateConnectError(error: unknown, where: string, authHint = ''): TetherError {
  if (isTetherError(error)) return error;
  const err = error as Ssh2Error;
  const message = err?.message ?? String(error);
  const errno = typeof err?.code === 'string' ? err.code : undefined;
  if (err?.level === 'client-authentication') {
    return new TetherError('UNAUTHORIZED', `unauthorized: ${where} refused every key offered${authHint}`, { reason: 'auth-failed' }, { cause: error });
  }
  if (err?.level === 'agent') {
    return new TetherError('UNAUTHORIZED', `unauthorized: the ssh-agent failed while signing for ${where} (${message})`, { reason: 'agent-failed' }, { cause: error });
  }
  if (errno === 'ECONNREFUSED') {
    return new TetherError('CONNECTION_LOST', `connection refused: nothing accepts SSH connections at ${where}`, { errno }, { cause: error });
  }
  if (err?.level === 'client-dns' || errno === 'ENOTFOUND' || errno === 'EAI_AGAIN') {
    return new TetherError('CONNECTION_LOST', `connection refused: could not resolve the host name of ${where} (${errno ?? message})`, { errno }, { cause: error });
  }
  if (err?.level === 'client-timeout' || errno === 'ETIMEDOUT') {
    return new TetherError('CONNECTION_LOST', `connection reset by peer: ${where} stopped answering (${message})`, { errno: 'ETIMEDOUT' }, { cause: error });
  }
  return new TetherError('CONNECTION_LOST', `connection reset by peer: ${where} (${message})`, errno ? { errno } : {}, { cause: error });
}

/**
 * Translates a failure to open a channel (`forwardOut`, `exec`). A server that forbids TCP
 * forwarding answers "administratively prohibited": that is `PERMISSION_DENIED` with
 * `details.reason: 'forwarding-prohibited'`, which the transport answers with the bridge.
 */
export function translateChannelError(error: unknown, what: string, where: string): TetherError {
  if (isTetherError(error)) return error;
  const err = error as Ssh2Error;
  const message = err?.message ?? String(error);
  if (err?.reason === OPEN_ADMINISTRATIVELY_PROHIBITED || /administratively prohibited/i.test(message)) {
    return new TetherError('PERMISSION_DENIED', `${where} refused ${what}: administratively prohibited`, { reason: 'forwarding-prohibited' }, { cause: error });
  }
  if (err?.reason === OPEN_CONNECT_FAILED) {
    return new TetherError('CONNECTION_LOST', `connection refused: ${where} could not open ${what} (${message})`, { reason: 'connect-failed' }, { cause: error });
  }
  if (/not connected|no response|closed/i.test(message)) {
    return new TetherError('CONNECTION_LOST', `connection reset by peer: ${where} (${message})`, {}, { cause: error });
  }
  return new TetherError('CONNECTION_LOST', `connection reset by peer: ${where} could not open ${what} (${message})`, {}, { cause: error });
}
