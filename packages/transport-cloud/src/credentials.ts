import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { TetherError } from '@tether/core';

/** What a relay credential is for: a daemon registering an environment, or a client reaching one. */
export type CredentialKind = 'environment' | 'client';

const PREFIX: Record<CredentialKind, string> = { environment: 'tre_', client: 'trc_' };

/** Names of environments and clients: letters, digits, `_` and `-`, starting with a letter or digit, at most 64. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Throws `INVALID_ARGUMENT` unless `name` is a valid environment or client name. */
export function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new TetherError('INVALID_ARGUMENT', `${what} must be 1-64 letters, digits, _ or -, starting with a letter or digit`, { name: String(name).slice(0, 80) });
  }
}

/**
 * A new credential: a kind prefix and 32 random bytes (base64url). Only its SHA-256 is kept by
 * the relay; the credential itself is shown once to whoever enrolled it.
 */
export function newCredential(kind: CredentialKind): { credential: string; sha256: string } {
  const credential = `${PREFIX[kind]}${randomBytes(32).toString('base64url')}`;
  return { credential, sha256: credentialHash(credential) };
}

/** The hex SHA-256 of a credential, as the registry stores it. */
export function credentialHash(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

/** True when `credential` hashes to `sha256` (compared in constant time). */
export function credentialMatches(credential: string, sha256: string): boolean {
  const presented = Buffer.from(credentialHash(credential), 'hex');
  const expected = Buffer.from(sha256, 'hex');
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

/** The credential in `Authorization: Bearer <credential>`, or undefined. */
export function bearer(authorization: string | undefined): string | undefined {
  const match = /^Bearer[ ]+(\S{16,512})\s*$/i.exec(authorization ?? '');
  return match?.[1];
}

/** Validates a credential read from a file, an option or the environment. */
export function checkCredential(credential: unknown, what: string): asserts credential is string {
  if (typeof credential !== 'string' || !/^\S{16,512}$/.test(credential)) {
    throw new TetherError('INVALID_ARGUMENT', `${what} must be a string of 16 to 512 characters without spaces`);
  }
}
