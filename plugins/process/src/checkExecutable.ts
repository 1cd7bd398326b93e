import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { delimiter, resolve } from 'node:path';
import { TetherError } from '@tether/core/lite';

/** glibc's `execvp` searches this when PATH is unset. */
const DEFAULT_PATH = '/bin:/usr/bin';
/** Linux: a single argument or variable may be at most 32 pages (MAX_ARG_STRLEN). */
const MAX_ARG_STRLEN = 32 * 4096;
/** Linux: argument strings get at least 32 pages and at most 3/4 of 8 MiB (fs/exec.c). */
const ARG_MAX_FLOOR = 32 * 4096;
const ARG_MAX_CEILING = ((8 * 1024 * 1024) / 4) * 3;

/**
 * Does before a PTY spawn what `execvp` will do in the child, and fails the way it would:
 * `SPAWN_FAILED` with `errno` `ENOENT` (not found on PATH / no such file), `EACCES` (found but not
 * an executable file) or, on Linux, `E2BIG` (arguments plus environment over the kernel's limit).
 *
 * node-pty forks first and reports a failed `exec` only as exit code 1 with a message on the
 * terminal, so a PTY spawn can not learn these errors afterwards the way `child_process` does.
 */
export async function checkExecutable(argv: readonly string[], env: Readonly<Record<string, string>>, cwd: string): Promise<string> {
  const file = argv[0] ?? '';
  const path = await findExecutable(file, env['PATH'] ?? DEFAULT_PATH, cwd);
  if (process.platform === 'linux') await checkArgumentSize(path, argv, env);
  return path;
}

async function findExecutable(file: string, pathVariable: string, cwd: string): Promise<string> {
  if (file === '') throw spawnFailed('ENOENT', 'the program name is empty');
  const candidates = file.includes('/') ? [resolve(cwd, file)] : pathVariable.split(delimiter).map((dir) => resolve(cwd, dir || '.', file));
  let sawDenied = false;
  for (const candidate of candidates) {
    const info = await stat(candidate).catch(() => undefined);
    if (!info) continue;
    if (info.isFile() && (await access(candidate, constants.X_OK).then(() => true, () => false))) return candidate;
    sawDenied = true;
  }
  if (sawDenied) throw spawnFailed('EACCES', `${file}: permission denied (not an executable file)`);
  throw spawnFailed('ENOENT', file.includes('/') ? `${file}: no such file` : `${file}: not found on PATH`);
}

async function checkArgumentSize(path: string, argv: readonly string[], env: Readonly<Record<string, string>>): Promise<void> {
  // What node-pty hands to execve: argv, `KEY=value` for each variable, and the path itself.
  const strings = [path, ...argv, ...Object.entries(env).map(([key, value]) => `${key}=${value}`)];
  let total = 0;
  for (const s of strings) {
    const size = Buffer.byteLength(s) + 1;
    if (size > MAX_ARG_STRLEN) throw spawnFailed('E2BIG', `an argument or variable is longer than ${MAX_ARG_STRLEN} bytes`);
    total += size;
  }
  const pointers = (argv.length + Object.keys(env).length) * 8;
  const limit = Math.max(ARG_MAX_FLOOR, Math.min(ARG_MAX_CEILING, (await stackLimit()) / 4));
  if (total + pointers > limit) throw spawnFailed('E2BIG', `arguments and environment take ${total + pointers} bytes; the limit is ${limit}`);
}

/** The soft stack limit, which the child inherits and which bounds its argument space. */
async function stackLimit(): Promise<number> {
  const limits = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const soft = /^Max stack size\s+(\S+)/m.exec(limits)?.[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

function spawnFailed(errno: string, message: string): TetherError {
  return new TetherError('SPAWN_FAILED', `spawn failed: ${message} (${errno})`, { errno });
}
