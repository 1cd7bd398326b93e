import { TetherError } from './errors.js';
import type { ExecutionSpec } from './events.js';

/**
 * Most bytes of an execution's labels (keys and values, UTF-8) together. Labels are the caller's
 * bookkeeping (a task id, a branch, a note); 64 KiB is far more than that needs, and it keeps
 * every listing of executions small.
 */
export const MAX_LABEL_BYTES = 64 * 1024;

/**
 * Most bytes of what an execution hands to the OS when it starts: `command` or `argv`, `env`
 * (as `KEY=VALUE`), `shell` and `cwd`, each string counted with its terminating NUL as the kernel
 * counts them. 2 MiB is Linux's ARG_MAX with the default 8 MiB stack: a larger spec could not be
 * started anyway (execve fails with E2BIG), and refusing it up front keeps it out of the store.
 */
export const MAX_COMMAND_BYTES = 2 * 1024 * 1024;

const KiB = 1024;

/**
 * Refuses a spec whose labels or command line pass their limit, with `INVALID_ARGUMENT` whose
 * details name the field, its size and the limit (`{ field, bytes, limit }`).
 */
export function checkSpecSize(spec: ExecutionSpec): void {
  let labels = 0;
  for (const [key, value] of Object.entries(spec.labels ?? {})) labels += Buffer.byteLength(key) + Buffer.byteLength(value);
  if (labels > MAX_LABEL_BYTES) refuse('labels', labels, MAX_LABEL_BYTES, 'labels (keys and values together)');

  let command = 0;
  const count = (text: string | undefined) => (text === undefined ? 0 : Buffer.byteLength(text) + 1);
  for (const arg of spec.argv ?? []) command += count(arg);
  command += count(spec.command) + count(spec.shell) + count(spec.cwd);
  for (const [key, value] of Object.entries(spec.env ?? {})) command += Buffer.byteLength(key) + Buffer.byteLength(value) + 2;
  if (command > MAX_COMMAND_BYTES) refuse('command', command, MAX_COMMAND_BYTES, 'the command line (command or argv, env, shell and cwd together)');
}

function refuse(field: string, bytes: number, limit: number, what: string): never {
  throw new TetherError('INVALID_ARGUMENT', `invalid execution spec (${field}): ${what} take ${bytes} bytes, more than the limit of ${limit} bytes (${limit / KiB} KiB)`, {
    field,
    bytes,
    limit,
  });
}
