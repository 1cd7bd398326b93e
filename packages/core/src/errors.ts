/**
 * The one error type of tether. `code` is API (stable, documented below); `message` is for
 * people and may change. Adapters translate library errors into a code and keep the original
 * as `cause`.
 */
export const ErrorCodes = {
  /** Input failed validation at a boundary (schema, id format, option range). */
  INVALID_ARGUMENT: 'a parameter is missing, malformed or out of range',
  /** No execution with that id exists on the machine. */
  EXEC_NOT_FOUND: 'exec_id not found',
  /** The operation needs a running execution but it has finished. */
  EXEC_FINISHED: 'the execution has already finished',
  /** The execution was started without stdin, or stdin was already closed. */
  STDIN_CLOSED: 'stdin is not open for this execution',
  /** The execution has no PTY (resize). */
  NOT_A_TTY: 'the execution has no terminal',
  /** An append stated an expected position that is not the stream's last seq. */
  APPEND_CONFLICT: 'the stream moved on since the expected seq',
  /** The store was closed. */
  STORE_CLOSED: 'the event store is closed',
  /**
   * No space left on a disk (or quota): the event store's (`details.dir` is its directory;
   * reads keep working, and the store retries by itself and takes appends again once space is
   * freed), or, from the filesystem backend, the disk of the file written (`details.path`).
   */
  DISK_FULL: 'no space left on the disk',
  /**
   * The event store cannot write for another reason (an I/O error, a read-only filesystem…);
   * `details.dir` is its directory, `details.errno` the OS error when known. Retried like
   * `DISK_FULL`.
   */
  STORE_WRITE_FAILED: 'the event store cannot write',
  /** Another process holds the store's directory. */
  STORE_LOCKED: 'the event store is already in use by another process',
  /** The store's files are damaged or not a tether store. */
  STORE_CORRUPT: 'the event store is corrupt or not a tether store',
  /** No backend of the needed kind is registered (no process backend, no filesystem…). */
  BACKEND_UNAVAILABLE: 'no backend of this kind is registered',
  /** A process could not be started (the errno is in `details.errno`). */
  SPAWN_FAILED: 'the process could not be started',
  /** The working directory does not exist or is not a directory. */
  CWD_NOT_FOUND: 'the working directory does not exist',
  /** Two plugins with the same name. */
  PLUGIN_DUPLICATE: 'a plugin with this name is already loaded',
  /** A plugin's `apiVersion` is not one this kernel speaks. */
  PLUGIN_API_MISMATCH: 'the plugin was written for another plugin API version',
  /** A plugin's config failed its schema, or its `register` threw. */
  PLUGIN_LOAD_FAILED: 'the plugin failed to load',
  /** The machine name is not configured. */
  UNKNOWN_MACHINE: 'unknown machine',
  /** No transport plugin handles the machine's transport. */
  TRANSPORT_UNAVAILABLE: 'no transport is registered for this machine',
  /** Filesystem: the path resolves outside every configured root. */
  PATH_OUTSIDE_ROOT: 'path not allowed (outside the allowed roots)',
  /** Filesystem: no such file or directory. */
  PATH_NOT_FOUND: 'no such file or directory',
  /** Filesystem: the target exists and overwriting was not asked for. */
  PATH_EXISTS: 'the path already exists',
  /** Filesystem: a directory was given where a file is needed, or the reverse. */
  NOT_A_FILE: 'not a regular file',
  NOT_A_DIRECTORY: 'not a directory',
  /** Filesystem: a non-empty directory was removed without `recursive`. */
  DIRECTORY_NOT_EMPTY: 'the directory is not empty',
  /** Filesystem or process: the OS refused (EACCES, EPERM). */
  PERMISSION_DENIED: 'permission denied',
  /** A size limit (file, message, output) was exceeded. */
  TOO_LARGE: 'a size limit was exceeded',
  /** GPU: a gate did not open within its timeout. */
  GATE_TIMEOUT: 'the GPU gate did not open in time',
  /** An operation did not finish within its timeout. */
  TIMEOUT: 'the operation timed out',
  /** The peer could not be reached or the connection dropped. */
  CONNECTION_LOST: 'connection reset by peer',
  /** A mutating call's reply was lost; whether it took effect is unknown. */
  OUTCOME_UNKNOWN: 'the outcome of the call is unknown',
  /** Authentication missing or wrong. */
  UNAUTHORIZED: 'unauthorized',
  /** The operation was aborted by the caller. */
  ABORTED: 'the operation was aborted',
  /** A bug or an unexpected failure. */
  INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

const brand = Symbol.for('tether.TetherError');

export class TetherError extends Error {
  override readonly name = 'TetherError';
  readonly [brand] = true;

  constructor(
    readonly code: ErrorCode,
    message: string = ErrorCodes[code],
    /** Structured facts about the failure (an errno, a path, a limit); safe to show. */
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** True for a TetherError from any copy of this package (the brand survives duplicate installs). */
export function isTetherError(value: unknown, code?: ErrorCode): value is TetherError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[brand] === true &&
    (code === undefined || (value as TetherError).code === code)
  );
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}
