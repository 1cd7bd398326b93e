import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { isTetherError, TetherError } from '@tether/core';

/** Shortest token accepted from a file or an option (a generated one is 64 hex characters). */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Reads the daemon's token from `path`, or creates the file with a new token (32 random bytes
 * as hex, mode 0600) when it does not exist. Refuses a file that group or others may read or
 * write, or that another user owns (`PERMISSION_DENIED`); the token itself never appears in an
 * error.
 */
export async function loadOrCreateToken(path: string): Promise<{ token: string; created: boolean }> {
  const token = randomBytes(32).toString('hex');
  try {
    // `wx`: never overwrite a token another daemon start just wrote.
    const file = await open(path, 'wx', 0o600);
    try {
      await file.writeFile(`${token}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    return { token, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(error, path);
  }
  return { token: await readToken(path), created: false };
}

/** Reads a token file written by a daemon, with the same checks as `loadOrCreateToken`. */
export async function readToken(path: string): Promise<string> {
  let info;
  let text;
  try {
    info = await stat(path);
    if (!info.isFile()) throw new TetherError('INVALID_ARGUMENT', `the token file ${path} is not a regular file`, { path });
    if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw new TetherError(
        'PERMISSION_DENIED',
        `the token file ${path} is accessible by group or others (mode ${mode}); run chmod 600 ${path}`,
        { path, mode },
      );
    }
    if (typeof process.getuid === 'function' && info.uid !== process.getuid()) {
      throw new TetherError('PERMISSION_DENIED', `the token file ${path} belongs to another user (uid ${info.uid})`, { path, uid: info.uid });
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw fileError(error, path);
  }
  const token = text.trim();
  checkToken(token, `the token in ${path}`);
  return token;
}

/** Validates a token given as an option or read from a file. */
export function checkToken(token: unknown, what = 'the token'): asserts token is string {
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new TetherError('INVALID_ARGUMENT', `${what} must be a string of at least ${MIN_TOKEN_LENGTH} characters without spaces`);
  }
}

/**
 * Compares presented credentials with the expected token in constant time. Both sides are
 * hashed first, so neither the token's length nor a common prefix shows in the timing.
 */
export class TokenVerifier {
  readonly #expected: Buffer;

  constructor(token: string) {
    checkToken(token);
    this.#expected = digest(token);
  }

  /** True when `authorization` is `Bearer <the token>`. */
  verifyAuthorization(authorization: string | undefined): boolean {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? '');
    const presented = digest(match?.[1] ?? '');
    // Compare even when the header is malformed, so a malformed header costs the same time.
    return timingSafeEqual(presented, this.#expected) && match !== null;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function fileError(error: unknown, path: string): TetherError {
  if (isTetherError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return new TetherError('PERMISSION_DENIED', `cannot access the token file ${path}`, { path }, { cause: error });
  if (code === 'ENOENT') return new TetherError('PATH_NOT_FOUND', `no token file at ${path} (nor its directory)`, { path }, { cause: error });
  return new TetherError('INTERNAL', `cannot use the token file ${path}: ${code ?? String(error)}`, { path }, { cause: error });
}
