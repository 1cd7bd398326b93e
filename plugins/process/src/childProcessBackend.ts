import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { TetherError, isTetherError, withUserUmask, type ProcessBackend, type ProcessSpec, type RunningProcess } from '@tether/core';
import { z } from 'zod';
import { checkExecutable } from './checkExecutable.js';
import { PipeProcess } from './pipeProcess.js';
import { EXEC_ID_VARIABLE } from './processTree.js';
import { ProcessConfig, type ProcessConfigInput } from './processConfig.js';
import { loadNodePty, type IPty, type PtyModule } from './nodePty.js';
import { PtyProcess } from './ptyProcess.js';

const OsString = z.string().refine((s) => !s.includes('\0'), 'must not contain a NUL byte');
const SpecSchema = z.object({
  id: OsString.min(1),
  argv: z.array(OsString).min(1),
  cwd: OsString.min(1).optional(),
  env: z.record(OsString.min(1).refine((key) => !key.includes('='), 'a variable name must not contain "="'), OsString).optional(),
  envMode: z.enum(['merge', 'exact']),
  tty: z.object({ cols: z.number().int().min(1).max(10_000), rows: z.number().int().min(1).max(10_000) }).optional(),
  stdin: z.boolean(),
});

/** Variables a terminal's size comes from; inherited ones would contradict the PTY's size. */
const TERMINAL_SIZE_VARIABLES = new Set(['COLUMNS', 'LINES']);

/**
 * The process backend: `child_process.spawn` (no shell) with pipes, or a PTY through node-pty.
 * Every process leads its own process group (`detached`, or the PTY's session) and carries
 * `TETHER_EXEC_ID=<spec.id>` in its environment.
 *
 * ```ts
 * const backend = new ChildProcessBackend({ drainTimeoutMs: 500 });
 * const proc = await backend.spawn({ id: 'x1', argv: ['sh', '-c', 'echo hi'], envMode: 'merge', stdin: false });
 * proc.output$.subscribe((chunk) => process.stdout.write(chunk.data));
 * const exit = await proc.exit; // { exitCode: 0, signal: null }
 * ```
 *
 * - stdin: a pipe if `spec.stdin`, else `/dev/null` (end of file at once). For a PTY, closing
 *   input types ^D, and a PTY started without stdin gets that ^D at once.
 * - env: `process.env` (its `PWD` set to the cwd; for a PTY without `COLUMNS`/`LINES`), then the
 *   configured `env`, then `spec.env` (`merge`); or `spec.env` only (`exact`). A PTY also gets
 *   `TERM` (configured default when absent) and `PWD` from node-pty.
 */
export class ChildProcessBackend implements ProcessBackend {
  readonly #config: ProcessConfig;
  #pty: PtyModule | undefined;

  /** Options as in the plugin's config; invalid ones fail with `INVALID_ARGUMENT`. */
  constructor(options: ProcessConfigInput = {}) {
    const parsed = ProcessConfig.safeParse(options);
    if (!parsed.success) throw invalid('process backend options', parsed.error);
    this.#config = parsed.data;
  }

  async spawn(input: ProcessSpec): Promise<RunningProcess> {
    const parsed = SpecSchema.safeParse(input);
    if (!parsed.success) throw invalid('process spec', parsed.error);
    const spec = parsed.data;
    const cwd = resolve(spec.cwd ?? process.cwd());
    await checkCwd(cwd);
    const env = this.#environment(spec.env ?? {}, spec.envMode, spec.id, cwd, spec.tty !== undefined);
    return spec.tty ? this.#spawnPty(spec.argv, cwd, env, spec.tty, spec) : spawnPipes(spec.argv, cwd, env, spec, this.#config.drainTimeoutMs);
  }

  #environment(own: Record<string, string>, mode: 'merge' | 'exact', id: string, cwd: string, tty: boolean): Record<string, string> {
    // Object.fromEntries defines properties, so a variable named __proto__ stays a variable.
    const entries = new Map<string, string>();
    if (mode === 'merge') {
      for (const [key, value] of Object.entries(process.env)) {
        if (value !== undefined && !(tty && TERMINAL_SIZE_VARIABLES.has(key))) entries.set(key, value);
      }
      // The daemon's PWD names the daemon's directory, not the child's.
      if (entries.has('PWD')) entries.set('PWD', cwd);
      for (const [key, value] of Object.entries(this.#config.env)) entries.set(key, value);
    }
    for (const [key, value] of Object.entries(own)) entries.set(key, value);
    entries.set(EXEC_ID_VARIABLE, id);
    return Object.fromEntries(entries);
  }

  async #spawnPty(
    argv: string[],
    cwd: string,
    env: Record<string, string>,
    size: { cols: number; rows: number },
    spec: { id: string; stdin: boolean },
  ): Promise<RunningProcess> {
    const pty = this.#loadPty();
    env['TERM'] ??= this.#config.term;
    await checkExecutable(argv, { ...env, PWD: cwd }, cwd);
    let term: IPty;
    try {
      term = withUserUmask(() => pty.spawn(argv[0]!, argv.slice(1), { name: env['TERM'], cols: size.cols, rows: size.rows, cwd, env, encoding: null }));
    } catch (cause) {
      const errno = (cause as NodeJS.ErrnoException).code;
      throw new TetherError('SPAWN_FAILED', `spawn failed: ${(cause as Error).message}`, errno ? { errno } : {}, { cause });
    }
    return new PtyProcess(term, { id: spec.id, stdin: spec.stdin });
  }

  #loadPty(): PtyModule {
    try {
      this.#pty ??= loadNodePty();
      return this.#pty;
    } catch (cause) {
      throw new TetherError('BACKEND_UNAVAILABLE', `terminals are unavailable: node-pty could not be loaded (${(cause as Error).message})`, { backend: 'pty' }, { cause });
    }
  }
}

async function spawnPipes(
  argv: string[],
  cwd: string,
  env: Record<string, string>,
  spec: { id: string; stdin: boolean },
  drainTimeoutMs: number,
): Promise<RunningProcess> {
  let child: ChildProcess;
  try {
    // The daemon's own files are private (umask 077); the command gets the user's umask.
    child = withUserUmask(() =>
      spawnChild(argv[0]!, argv.slice(1), {
        cwd,
        env,
        detached: true,
        stdio: [spec.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        windowsHide: true,
      }),
    );
  } catch (cause) {
    // Some failures (E2BIG) are thrown; others (ENOENT, EACCES) arrive as an 'error' event.
    throw spawnFailed(cause);
  }
  await new Promise<void>((resolveSpawn, reject) => {
    const onError = (error: Error): void => {
      child.off('spawn', onSpawn);
      reject(spawnFailed(error));
    };
    const onSpawn = (): void => {
      child.off('error', onError);
      // Later errors (a failed kill through the ChildProcess) must not crash the host.
      child.on('error', () => undefined);
      resolveSpawn();
    };
    child.once('error', onError);
    child.once('spawn', onSpawn);
  });
  return new PipeProcess(child, { id: spec.id, stdin: spec.stdin, drainTimeoutMs });
}

async function checkCwd(cwd: string): Promise<void> {
  let info;
  try {
    info = await stat(cwd);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new TetherError('CWD_NOT_FOUND', `the working directory does not exist: ${cwd}`, { cwd }, { cause });
    }
    throw new TetherError('SPAWN_FAILED', `the working directory is not usable: ${cwd} (${code ?? 'unknown'})`, { cwd, errno: code }, { cause });
  }
  if (!info.isDirectory()) throw new TetherError('CWD_NOT_FOUND', `the working directory is not a directory: ${cwd}`, { cwd });
}

function spawnFailed(cause: unknown): TetherError {
  if (isTetherError(cause)) return cause;
  const errno = (cause as NodeJS.ErrnoException).code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return new TetherError('SPAWN_FAILED', `spawn failed: ${message}`, errno ? { errno } : {}, { cause });
}

function invalid(what: string, error: z.ZodError): TetherError {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? ` (${issue.path.join('.')})` : '';
  return new TetherError('INVALID_ARGUMENT', `invalid ${what}${where}: ${issue?.message ?? 'malformed'}`, {
    issues: error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}
