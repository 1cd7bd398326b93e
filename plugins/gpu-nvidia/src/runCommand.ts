import { spawn, type ChildProcess } from 'node:child_process';

/** How one run of a command ended. `runCommand` never rejects. */
export type CommandOutcome =
  | { readonly kind: 'exited'; readonly exitCode: number; readonly stdout: string; readonly stderr: string }
  | { readonly kind: 'signaled'; readonly signal: string; readonly stdout: string; readonly stderr: string }
  /** The program could not be started; `errno` is `ENOENT`, `EACCES`… */
  | { readonly kind: 'spawn-failed'; readonly errno: string; readonly message: string }
  /** Killed because it ran longer than `timeoutMs`. */
  | { readonly kind: 'timed-out' }
  /** Killed because stdout exceeded `maxOutputBytes`. */
  | { readonly kind: 'too-large' }
  /** Killed because `signal` aborted. */
  | { readonly kind: 'aborted' };

export interface RunCommandOptions {
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly signal?: AbortSignal;
}

const MAX_STDERR_BYTES = 64 * 1024;

/**
 * Run `command` with `args` (no shell) in a process group of its own, collecting stdout and
 * stderr. On timeout, oversized output or abort the whole group gets SIGKILL and the promise
 * settles at once, without waiting for the exit: a process stuck in the driver (uninterruptible
 * sleep) cannot hold the caller up, and is unref'd so it cannot keep Node alive either.
 */
export function runCommand(command: string, args: readonly string[], options: RunCommandOptions): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    if (options.signal?.aborted) {
      resolve({ kind: 'aborted' });
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(command, args, { detached: true, shell: false, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    } catch (error) {
      resolve(spawnFailed(error));
      return;
    }
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrBytes = 0;
    let settled = false;

    const finish = (outcome: CommandOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const stop = (kind: 'timed-out' | 'too-large' | 'aborted'): void => {
      if (settled) return;
      killGroup(child);
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
      finish({ kind });
    };
    const onAbort = (): void => stop('aborted');
    const timer = setTimeout(() => stop('timed-out'), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > options.maxOutputBytes) stop('too-large');
      else stdout.push(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderrBytes >= MAX_STDERR_BYTES) return;
      stderr.push(chunk);
      stderrBytes += chunk.length;
    });
    child.on('error', (error) => {
      // After a successful spawn 'error' only reports a failed kill; the timeout still applies.
      if (child.pid === undefined) finish(spawnFailed(error));
    });
    child.on('close', (exitCode, signal) => {
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      if (exitCode !== null) finish({ kind: 'exited', exitCode, stdout: out, stderr: err });
      else finish({ kind: 'signaled', signal: signal ?? 'unknown', stdout: out, stderr: err });
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // No process group (Windows) or it is already gone: fall back to the child itself.
    try {
      child.kill('SIGKILL');
    } catch {
      // Already exited.
    }
  }
}

function spawnFailed(error: unknown): CommandOutcome {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  return {
    kind: 'spawn-failed',
    errno: typeof errno === 'string' ? errno : 'UNKNOWN',
    message: error instanceof Error ? error.message : String(error),
  };
}
