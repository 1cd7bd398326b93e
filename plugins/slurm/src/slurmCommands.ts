import { execFile } from 'node:child_process';
import { TetherError } from '@tether/core';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a Slurm command (no shell), with a timeout and an output cap; never rejects for a non-zero exit. */
export class SlurmCommands {
  readonly #env: NodeJS.ProcessEnv;
  readonly #timeoutMs: number;

  constructor(options: { slurmConf?: string; timeoutMs: number }) {
    this.#env = options.slurmConf ? { ...process.env, SLURM_CONF: options.slurmConf } : process.env;
    this.#timeoutMs = options.timeoutMs;
  }

  run(command: string, args: readonly string[], input?: string): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        command,
        args,
        { env: this.#env, timeout: this.#timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
        (error, stdout, stderr) => {
          if (error && typeof error.code !== 'number') {
            const reason = error.code === 'ENOENT' ? `${command} is not installed (or not on PATH)` : error.killed ? `${command} took longer than ${this.#timeoutMs} ms` : error.message;
            reject(new TetherError(error.code === 'ENOENT' ? 'BACKEND_UNAVAILABLE' : 'TIMEOUT', reason, { command }, { cause: error }));
            return;
          }
          resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  }
}

/** Slurm's own message from a failed command's stderr (`sbatch: error: …` lines), one line. */
export function slurmMessage(result: CommandResult): string {
  const lines = result.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /error/i.test(l));
  return (errors.length > 0 ? errors : lines).join('; ') || `exit code ${result.code}`;
}
