import { TetherError } from '@tether/core';
import { sshConnect, type SshConnectOptions } from './sshConnect.js';
import type { SshRunOptions } from './sshConnection.js';
import type { SshTarget } from './sshTarget.js';

/** Options of `runSshCommand`: how to connect, and how to run. */
export interface RunSshCommandOptions extends Omit<SshConnectOptions, 'forwardAgent'>, Omit<SshRunOptions, 'forwardAgent'> {
  /** Forward the ssh-agent to the command (as `ssh -A`), when there is an agent. Default false. */
  readonly forwardAgent?: boolean;
}

export interface RunSshCommandResult {
  /** Output decoded as UTF-8 (invalid bytes become U+FFFD). */
  readonly stdout: string;
  readonly stderr: string;
  /** The exit status; null when a signal ended the command. */
  readonly code: number | null;
  readonly signal?: string;
  /** Whether the agent was forwarded (false when asked for but no agent was available or the server refused). */
  readonly forwardAgent: boolean;
}

/**
 * Runs one command on `target` over a new SSH connection (closed afterwards) and returns its
 * output and exit status, like `ssh [-t] [-A] target cmd`. The command runs in the remote
 * user's login shell. Connection failures are as `sshConnect`'s.
 *
 * ```ts
 * const { stdout, code } = await runSshCommand('gpu1', 'nvidia-smi -L', { forwardAgent: true });
 * ```
 */
export async function runSshCommand(target: string | SshTarget, command: string, options: RunSshCommandOptions = {}): Promise<RunSshCommandResult> {
  if (typeof command !== 'string' || command.length === 0) throw new TetherError('INVALID_ARGUMENT', 'the command to run over ssh is empty');
  const { stdin, tty, timeoutMs, forwardAgent = false, ...connectOptions } = options;
  const connection = await sshConnect(target, { ...connectOptions, forwardAgent: false });
  try {
    let forwarded = forwardAgent && connection.agent !== null;
    const run = (withAgent: boolean) => connection.run(command, { stdin, tty, timeoutMs, forwardAgent: withAgent });
    let result;
    try {
      result = await run(forwarded);
    } catch (error) {
      // A server that refuses agent forwarding (AllowAgentForwarding no) still runs the command, as OpenSSH does.
      if (!forwarded || !/agent forwarding/i.test(error instanceof Error ? error.message : '')) throw error;
      forwarded = false;
      result = await run(false);
    }
    return {
      stdout: result.stdout.toString('utf8'),
      stderr: result.stderr.toString('utf8'),
      code: result.code,
      ...(result.signal === undefined ? {} : { signal: result.signal }),
      forwardAgent: forwarded,
    };
  } finally {
    connection.close();
  }
}
