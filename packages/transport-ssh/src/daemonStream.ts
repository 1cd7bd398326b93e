import type { ClientChannel } from 'ssh2';
import { TetherError, isTetherError } from '@tether/core';
import { DEFAULT_BRIDGE_CMD, type SshMachineConfig } from './machineSchema.js';
import type { SshConnection } from './sshConnection.js';
import { shellQuote } from './shellQuote.js';

/** How an SSH connection reaches the daemon: a forwarded TCP channel, or the bridge command. */
export type DaemonRoute = 'forward' | 'bridge';

/** What is remembered per SSH connection: the route that worked. */
export interface DaemonLink {
  route?: DaemonRoute;
}

/** A byte stream to the daemon, with what it leads to (for messages) and how to explain a failure on it. */
export interface DaemonStream {
  readonly stream: ClientChannel;
  readonly display: string;
  /** For the bridge: turns a `CONNECTION_LOST` seen on the stream into the bridge's own exit status and stderr. */
  readonly failure?: (error: unknown) => Promise<TetherError | undefined>;
  /** For a forwarded channel: opens another one to the same port (to ask a peer that is not tether what it is). */
  readonly probe?: () => Promise<ClientChannel>;
}

/**
 * Opens a byte stream to the daemon of `config` over `ssh`: a forwarded TCP channel to
 * `127.0.0.1:<daemon_port>`, or, where the server forbids TCP forwarding, the stdin/stdout of
 * the bridge command (the route is remembered in `link`). Whoever holds the stream speaks the
 * daemon's WebSocket protocol over it.
 */
export async function openDaemonStream(ssh: SshConnection, link: DaemonLink, config: SshMachineConfig, name: string): Promise<DaemonStream> {
  const port = config.daemon_port;
  if (link.route !== 'bridge') {
    try {
      const stream = await ssh.forwardOut('127.0.0.1', port);
      link.route = 'forward';
      return { stream, display: `127.0.0.1:${port} on ${ssh.where}`, probe: () => ssh.forwardOut('127.0.0.1', port) };
    } catch (error) {
      if (!(isTetherError(error, 'PERMISSION_DENIED') && error.details['reason'] === 'forwarding-prohibited')) {
        if (isTetherError(error, 'CONNECTION_LOST') && error.details['reason'] === 'connect-failed') {
          throw new TetherError(
            'CONNECTION_LOST',
            `connection refused: no tether daemon listens on 127.0.0.1:${port} on ${ssh.where}; start it with \`tether machine up --machine ${name}\``,
            { machine: name, reason: 'daemon-not-running' },
            { cause: error },
          );
        }
        throw error;
      }
      link.route = 'bridge';
    }
  }
  const command = config.bridge_cmd ?? `${DEFAULT_BRIDGE_CMD} --connect 127.0.0.1:${port}`;
  const stream = await ssh.exec(command);
  let stderr = '';
  stream.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => {
    let code: number | null = null;
    stream.on('exit', (status: number | null) => (code = status));
    stream.once('close', () => resolve(code));
  });
  // What went wrong is in the bridge's exit status and stderr, which arrive as its channel closes.
  const failure = async (error: unknown): Promise<TetherError | undefined> => {
    if (!isTetherError(error, 'CONNECTION_LOST')) return undefined;
    stream.destroy();
    const code = await Promise.race([exited, new Promise<'unknown'>((resolve) => setTimeout(() => resolve('unknown'), 2_000).unref())]);
    const said = stderr.trim().split('\n').slice(-3).join(' | ');
    return new TetherError(
      'CONNECTION_LOST',
      `connection refused: the bridge command \`${command}\` on ${ssh.where} (used because the server forbids TCP forwarding) did not reach the daemon (exit ${code}${said ? `: ${said}` : ''})`,
      { machine: name, reason: 'bridge-failed', exitCode: code },
      { cause: error },
    );
  };
  return { stream, display: `the bridge \`${command}\` on ${ssh.where}`, failure };
}

/**
 * The file, in the daemon's state directory, where `tether daemon serve` records which token
 * file the daemon listening on `port` uses: two lines, its pid and the token file's path.
 */
export function portRecordName(port: number): string {
  return `daemon-port-${port}`;
}

/**
 * The POSIX sh script that prints which token file to read, then the token. `token_file` when
 * configured; else the token file the daemon on `daemon_port` recorded (`daemon serve` writes
 * `$XDG_STATE_HOME/tether/daemon-port-<port>`; `machine up` has a daemon it starts record there
 * whatever that daemon's own environment), if that daemon still runs; else the default token of
 * the login's state directory, `${XDG_STATE_HOME:-~/.local/state}/tether/token`.
 */
function tokenScript(config: Pick<SshMachineConfig, 'token_file' | 'daemon_port'>): string {
  const print = `printf '%s\\n' "$f"; exec cat -- "$f"`;
  if (config.token_file !== undefined) return `f=${shellQuote(config.token_file, true)}; ${print}`;
  return [
    `d="\${XDG_STATE_HOME:-$HOME/.local/state}/tether"; f="$d/token"; r="$d/${portRecordName(config.daemon_port)}"`,
    'if [ -r "$r" ]; then { read -r pid; read -r tf; } < "$r"; if [ -n "$tf" ] && kill -0 "$pid" 2>/dev/null; then f="$tf"; fi; fi',
    print,
  ].join('\n');
}

/**
 * Reads the daemon token on the machine (see `tokenScript` for which file), returning it with
 * the file it came from (for messages).
 */
export async function readRemoteToken(
  ssh: SshConnection,
  config: Pick<SshMachineConfig, 'token_file' | 'daemon_port'>,
  name: string,
): Promise<{ token: string; file: string }> {
  const result = await ssh.run(`sh -c ${shellQuote(tokenScript(config))}`, { timeoutMs: 20_000 });
  const out = result.stdout.toString('utf8');
  const newline = out.indexOf('\n');
  const file = newline < 0 ? (config.token_file ?? '~/.local/state/tether/token') : out.slice(0, newline);
  const token = newline < 0 ? '' : out.slice(newline + 1).trim();
  if (result.code === 0 && token.length >= 16 && !/\s/.test(token)) return { token, file };
  const said = result.stderr.toString('utf8').trim();
  if (/no such file/i.test(said)) {
    throw new TetherError(
      'CONNECTION_LOST',
      `connection refused: there is no daemon token at ${file} on ${ssh.where}: the daemon has not been started there; start it with \`tether machine up --machine ${name}\``,
      { machine: name, reason: 'no-token', tokenFile: file },
    );
  }
  if (/permission denied/i.test(said)) {
    throw new TetherError('PERMISSION_DENIED', `cannot read the daemon token ${file} on ${ssh.where} (permission denied)`, { machine: name, tokenFile: file });
  }
  throw new TetherError('UNAUTHORIZED', `unauthorized: no usable daemon token in ${file} on ${ssh.where}${said ? ` (${said})` : ''}`, {
    machine: name,
    reason: 'bad-token',
    tokenFile: file,
  });
}

/** The daemon refused the token read from `file`: the same error, saying which file it came from. */
export function refusedToken(error: TetherError, file: string, ssh: SshConnection, name: string): TetherError {
  return new TetherError('UNAUTHORIZED', `${error.message} (the token was read from ${file} on ${ssh.where})`, { ...error.details, machine: name, reason: 'token-refused', tokenFile: file }, { cause: error });
}
