import type { Duplex } from 'node:stream';
import { TetherError, isTetherError, setLongTimeout, type Channel, type LongTimer, type MachineConfig, type Transport } from '@tether/core';
import type { KeepaliveOptions } from '@tether/transport-ws';
import { openDaemonStream, readRemoteToken, refusedToken, type DaemonLink } from './daemonStream.js';
import { machineSchema, type SshMachineConfig } from './machineSchema.js';
import { sshConnect, type SshConnectOptions } from './sshConnect.js';
import type { SshConnection } from './sshConnection.js';
import { wsOverStream } from './wsOverStream.js';

/** Options of the `ssh` transport: how to connect (see `SshConnectOptions`), and the tunnel's. */
export interface SshTransportOptions extends Omit<SshConnectOptions, 'signal' | 'forwardAgent'> {
  /** Close an SSH connection this long after its last daemon channel closed. Default 5000 ms. */
  readonly idleTimeoutMs?: number;
  /** Give up on the WebSocket upgrade through the tunnel after this long. Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** WebSocket keepalive inside the tunnel. Default `wsChannel`'s (ping every 15 s). */
  readonly keepalive?: KeepaliveOptions;
  /** Largest message accepted from the daemon. Default 256 MiB. */
  readonly maxPayloadBytes?: number;
}

interface Pooled extends DaemonLink {
  readonly ssh: SshConnection;
  channels: number;
  idleTimer?: LongTimer;
  /** The daemon token read over this connection, per token file. */
  readonly tokens: Map<string, { readonly token: string; readonly file: string }>;
}

/**
 * The client side of the `ssh` transport. `connect(machine)` reaches the daemon on a machine you
 * can `ssh` to: one SSH connection per `ssh` target, shared by every channel to it; each channel
 * is a WebSocket to the daemon carried by a forwarded TCP channel to `127.0.0.1:<daemon_port>`,
 * or, where the server forbids TCP forwarding, by the stdin/stdout of the bridge command. The
 * token is read over SSH from the machine's token file, so whoever may ssh in may use the daemon.
 *
 * Machine config fields: see `machineSchema`.
 */
export class SshTransport implements Transport {
  readonly name = 'ssh';
  readonly #options: SshTransportOptions;
  readonly #pool = new Map<string, Pooled>();
  readonly #connecting = new Map<string, Promise<Pooled>>();
  #closed = false;
  /** SSH connections opened so far (a reconnect after a drop adds one). */
  connectionsOpened = 0;

  constructor(options: SshTransportOptions = {}) {
    this.#options = options;
  }

  /** SSH connections open now. */
  get openConnections(): number {
    return this.#pool.size;
  }

  async connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel> {
    if (this.#closed) throw new TetherError('CONNECTION_LOST', 'the ssh transport is closed');
    const parsed = machineSchema.safeParse(machine);
    if (!parsed.success) {
      const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new TetherError('INVALID_ARGUMENT', `machine ${machine?.name} has an invalid ssh config: ${where}`, { machine: machine?.name });
    }
    const config = parsed.data;
    const pooled = await abortable(this.#connection(config.ssh), signal);
    pooled.channels++;
    pooled.idleTimer?.clear();
    pooled.idleTimer = undefined;
    let opened: { channel: Channel; stream: Duplex };
    try {
      opened = await this.#openDaemonChannel(pooled, config, machine.name, signal);
    } catch (error) {
      this.#release(config.ssh, pooled);
      throw error;
    }
    opened.stream.once('close', () => this.#release(config.ssh, pooled));
    return opened.channel;
  }

  /** Closes every SSH connection (their channels drop). Idempotent. */
  close(): void {
    this.#closed = true;
    for (const pooled of this.#pool.values()) {
      pooled.idleTimer?.clear();
      pooled.ssh.close();
    }
    this.#pool.clear();
  }

  #connection(target: string): Promise<Pooled> {
    const existing = this.#pool.get(target);
    if (existing?.ssh.isOpen) return Promise.resolve(existing);
    let pending = this.#connecting.get(target);
    if (!pending) {
      // The daemon's channels never need the agent: no forwarding, whatever the ssh config says.
      pending = sshConnect(target, { ...this.#options, forwardAgent: false })
        .then((ssh) => {
          if (this.#closed) {
            ssh.close();
            throw new TetherError('CONNECTION_LOST', 'the ssh transport is closed');
          }
          this.connectionsOpened++;
          const pooled: Pooled = { ssh, channels: 0, tokens: new Map() };
          this.#pool.set(target, pooled);
          void ssh.closed.then(() => {
            pooled.idleTimer?.clear();
            if (this.#pool.get(target) === pooled) this.#pool.delete(target);
          });
          return pooled;
        })
        .finally(() => this.#connecting.delete(target));
      this.#connecting.set(target, pending);
    }
    return pending;
  }

  #release(target: string, pooled: Pooled): void {
    pooled.channels--;
    if (pooled.channels > 0 || !pooled.ssh.isOpen) return;
    pooled.idleTimer = setLongTimeout(() => {
      if (pooled.channels > 0) return;
      if (this.#pool.get(target) === pooled) this.#pool.delete(target);
      pooled.ssh.close();
    }, this.#options.idleTimeoutMs ?? 5_000);
    pooled.idleTimer.unref();
  }

  async #openDaemonChannel(pooled: Pooled, config: SshMachineConfig, name: string, signal?: AbortSignal): Promise<{ channel: Channel; stream: Duplex }> {
    const { ssh } = pooled;
    const port = config.daemon_port;
    // Tokens read from the machine, by where they were looked for (a token_file, or the daemon on the port).
    const tokenKey = config.token_file ?? `port:${port}`;
    for (let attempt = 0; ; attempt++) {
      const cached = config.token === undefined && pooled.tokens.has(tokenKey);
      const read = config.token !== undefined ? undefined : (pooled.tokens.get(tokenKey) ?? (await readRemoteToken(ssh, config, name)));
      const token = config.token ?? read!.token;
      if (read) pooled.tokens.set(tokenKey, read);
      const { stream, display, failure, probe } = await openDaemonStream(ssh, pooled, config, name);
      try {
        const channel = await wsOverStream(stream, {
          token,
          url: `ws://127.0.0.1:${port}/`,
          display,
          probe,
          signal,
          handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
          keepalive: this.#options.keepalive,
          maxPayloadBytes: this.#options.maxPayloadBytes,
        });
        return { channel, stream };
      } catch (error) {
        // The daemon may have been re-initialised with a new token since we read it: read it again, once.
        if (isTetherError(error, 'UNAUTHORIZED') && cached && attempt === 0) {
          pooled.tokens.delete(tokenKey);
          continue;
        }
        if (read && isTetherError(error, 'UNAUTHORIZED')) throw refusedToken(error, read.file, ssh, name);
        throw (await failure?.(error)) ?? error;
      }
    }
  }
}

function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new TetherError('ABORTED', 'connecting was aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
