import { ErrorCodes, TetherError, isTetherError, type ErrorCode } from '@tether/core';

/** errno → core code. Anything not listed becomes `INTERNAL` (the errno stays in `details`). */
const byErrno: Readonly<Record<string, ErrorCode>> = {
  ENOENT: 'PATH_NOT_FOUND',
  ELOOP: 'PATH_NOT_FOUND',
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
  EBUSY: 'PERMISSION_DENIED',
  ENOTDIR: 'NOT_A_DIRECTORY',
  EISDIR: 'NOT_A_FILE',
  ENXIO: 'NOT_A_FILE',
  EEXIST: 'PATH_EXISTS',
  ENOTEMPTY: 'DIRECTORY_NOT_EMPTY',
  ENOSPC: 'DISK_FULL',
  EDQUOT: 'DISK_FULL',
  EFBIG: 'TOO_LARGE',
  ENAMETOOLONG: 'INVALID_ARGUMENT',
  EINVAL: 'INVALID_ARGUMENT',
  EXDEV: 'INVALID_ARGUMENT',
};

/** The errno code (`ENOENT`…) of a Node.js system error, if it is one. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('E') ? code : undefined;
}

/**
 * Translates a filesystem failure into a TetherError. The message names only `callerPath` (the
 * path as the caller wrote it), never a resolved path, so nothing outside the roots leaks; the
 * original error (which may hold such a path) is kept as `cause`, and `details` carries the
 * errno. TetherErrors pass through unchanged.
 */
export function fsError(error: unknown, callerPath?: string): TetherError {
  if (isTetherError(error)) return error;
  const errno = errnoOf(error);
  const code: ErrorCode = (errno && byErrno[errno]) || 'INTERNAL';
  const what = errno === 'EXDEV' ? 'cannot move across filesystems' : errno === 'ELOOP' ? 'too many levels of symbolic links' : ErrorCodes[code];
  const message = callerPath === undefined ? what : `${what}: ${callerPath}`;
  const details: Record<string, unknown> = {};
  if (callerPath !== undefined) details['path'] = callerPath;
  if (errno) details['errno'] = errno;
  return new TetherError(code, message, details, { cause: error });
}

/** A TetherError about `callerPath` with the code's standard message. */
export function pathError(code: ErrorCode, callerPath: string, message: string = ErrorCodes[code], extra: Record<string, unknown> = {}): TetherError {
  return new TetherError(code, `${message}: ${callerPath}`, { path: callerPath, ...extra });
}
