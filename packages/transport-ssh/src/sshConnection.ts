import type { Client, ClientChannel, PseudoTtyOptions } from 'ssh2';
import { TetherError, setLongTimeout } from '@tether/core';
import { describeHost, type ResolvedSshHost } from './resolveSshHost.js';
import { translateChannelError, translateConnectError } from './sshErrors.js';

/** What a command run over SSH produced. */
export interface SshCommandResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** The exit status, or null when a signal ended the command (or the server did not say). */
  readonly code: number | null;
  /** The signal that ended it (`TERM`, `KILL`…), as the server names it. */
  readonly signal?: string;
}

/** Options of `SshConnection.run`. */
export interface SshRunOptions {
  /** Bytes written to the command's stdin, which is then closed. Default: stdin closed at once. */
  readonly stdin?: string | Uint8Array;
  /** Run in a pseudo-terminal (stderr then arrives on stdout). Default false. */
  readonly tty?: boolean | PseudoTtyOptions;
  /** Forward the ssh-agent to the command. Default false. */
  readonly forwardAgent?: boolean;
  /** Give up after this long (the channel is closed; `TIMEOUT`). Default: no limit. */
  readonly timeoutMs?: number;
}

/**
 * One open SSH connection (ssh2 `Client`), possibly reached through jump hosts. Carries any
 * number of channels at once: forwarded TCP connections, Unix socket connections and commands.
 * Closing it closes the jump connections it owns.
 */
export class SshConnection {
  /** The underlying ssh2 client, for what this class does not wrap. */
  readonly client: Client;
  readonly host: ResolvedSshHost;
  /** The ssh-agent socket used to authenticate (and to forward), or null. */
  readonly agent: string | null;
  /** Resolves once the connection has ended, with why when it did not end by `close()`. */
  readonly closed: Promise<TetherError | undefined>;
  readonly #owned: readonly SshConnection[];
  readonly #where: string;
  #open = true;
  #closedHere = false;
  #lastError: unknown;

  /** Wraps a client that is ready (authenticated). Use `sshConnect` to make one. */
  constructor(client: Client, host: ResolvedSshHost, options: { readonly owned?: readonly SshConnection[]; readonly agent?: string | null } = {}) {
    this.client = client;
    this.host = host;
    this.agent = options.agent ?? null;
    this.#owned = options.owned ?? [];
    this.#where = describeHost(host);
    this.closed = new Promise((resolve) => {
      client.on('error', (error: Error) => (this.#lastError = error));
      client.once('close', () => {
        this.#open = false;
        for (const jump of this.#owned) jump.close();
        if (this.#closedHere) return resolve(undefined);
        resolve(
          this.#lastError === undefined
            ? new TetherError('CONNECTION_LOST', `connection reset by peer: ${this.#where} closed the connection`)
            : translateConnectError(this.#lastError, this.#where),
        );
      });
    });
  }

  /** False once the connection has ended. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** `user@host:port` of the host, for messages. */
  get where(): string {
    return this.#where;
  }

  /** Ends the connection (and the jump connections it owns). Idempotent. */
  close(): void {
    this.#closedHere = true;
    this.#end();
  }

  /**
   * Opens a TCP connection from the remote host to `host:port` (`direct-tcpip`). Fails with
   * `PERMISSION_DENIED` (`details.reason: 'forwarding-prohibited'`) when the server forbids TCP
   * forwarding, `CONNECTION_LOST` ("connection refused") when nothing listens there.
   */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    return this.#open$(`a TCP connection to ${host}:${port}`, (callback) => this.client.forwardOut('127.0.0.1', 0, host, port, callback));
  }

  /** Opens a connection from the remote host to a Unix socket (an OpenSSH extension). */
  forwardOutStreamLocal(path: string): Promise<ClientChannel> {
    return this.#open$(`a connection to the socket ${path}`, (callback) => this.client.openssh_forwardOutStreamLocal(path, callback));
  }

  /** Starts `command` in the remote user's login shell; the channel is its stdin/stdout (`stderr` on `.stderr`). */
  exec(command: string, options: { readonly tty?: boolean | PseudoTtyOptions; readonly forwardAgent?: boolean; readonly env?: Record<string, string> } = {}): Promise<ClientChannel> {
    return this.#open$(`a session for \`${command}\``, (callback) =>
      this.client.exec(
        command,
        {
          ...(options.tty ? { pty: options.tty } : {}),
          ...(options.env ? { env: options.env } : {}),
          ...(options.forwardAgent ? { agentForward: true } : {}),
        },
        callback,
      ),
    );
  }

  /** Runs `command` to completion and collects its output. */
  async run(command: string, options: SshRunOptions = {}): Promise<SshCommandResult> {
    const channel = await this.exec(command, { tty: options.tty, forwardAgent: options.forwardAgent });
    return new Promise<SshCommandResult>((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let exit: { code: number | null; signal?: string } | undefined;
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setLongTimeout(() => {
              channel.close();
              reject(new TetherError('TIMEOUT', `\`${command}\` on ${this.#where} did not finish within ${options.timeoutMs} ms`));
            }, options.timeoutMs);
      channel.on('data', (chunk: Buffer) => stdout.push(chunk));
      channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      channel.on('exit', (code: number | null, signal?: string) => {
        exit = typeof code === 'number' ? { code } : { code: null, ...(signal ? { signal } : {}) };
      });
      channel.once('close', () => {
        timer?.clear();
        if (exit === undefined && !this.#open) {
          return reject(new TetherError('CONNECTION_LOST', `connection reset by peer: ${this.#where} dropped while \`${command}\` ran`));
        }
        resolve({ stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), ...(exit ?? { code: null }) });
      });
      if (options.stdin !== undefined) channel.end(options.stdin);
      else channel.end();
    });
  }

  #open$(what: string, open: (callback: (error: Error | undefined, channel: ClientChannel) => void) => void): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      if (!this.#open) return reject(new TetherError('CONNECTION_LOST', `connection reset by peer: the connection to ${this.#where} is closed`));
      try {
        open((error, channel) => (error ? reject(translateChannelError(error, what, this.#where)) : resolve(channel)));
      } catch (error) {
        // ssh2 throws "Not connected" synchronously once the socket is gone.
        reject(translateChannelError(error, what, this.#where));
      }
    });
  }

  #end(): void {
    if (this.#open) this.client.end();
    for (const jump of this.#owned) jump.close();
  }
}
