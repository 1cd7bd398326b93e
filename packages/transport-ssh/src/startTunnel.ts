import { chmod, mkdir, open, stat } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { TetherError, isTetherError, setLongTimeout, type LongTimer, type MachineConfig } from '@tether/core';
import { openDaemonStream, readRemoteToken, refusedToken, type DaemonLink } from './daemonStream.js';
import { machineSchema, type SshMachineConfig } from './machineSchema.js';
import { sshConnect } from './sshConnect.js';
import type { SshConnection } from './sshConnection.js';
import {
  readTunnelState,
  removeFile,
  tunnelConfigHash,
  tunnelFiles,
  writePrivateFile,
  type TunnelFiles,
  type TunnelSshOptions,
  type TunnelState,
} from './tunnelFiles.js';
import { wsOverStream } from './wsOverStream.js';

/** Options of `startTunnel`. */
export interface StartTunnelOptions {
  /** The user's state directory; the tunnel's files go to `<stateDir>/tunnels/`. */
  readonly stateDir: string;
  /** Exit after this long without a local connection. Default 600 000 ms (10 minutes). */
  readonly idleTimeoutMs?: number;
  /** How to open the SSH connection (ssh config, agent, keys, known_hosts). Default: OpenSSH's files. */
  readonly ssh?: TunnelSshOptions;
  /** Attempts to re-open the SSH connection after it dropped, before the tunnel exits. Default 3. */
  readonly reconnectAttempts?: number;
  /** Where log entries go. Default nowhere. */
  readonly log?: (entry: Readonly<Record<string, unknown>>) => void;
}

/** Why a tunnel ended. */
export type TunnelExitReason = 'idle' | 'stopped' | 'ssh-lost' | 'start-failed';

/** A running tunnel (see `startTunnel`). */
export interface Tunnel {
  readonly files: TunnelFiles;
  /** What the state file says. */
  readonly state: TunnelState;
  /** Local connections open now. */
  readonly connections: number;
  /** SSH connections opened so far (a reconnect after a drop adds one). */
  readonly sshConnections: number;
  /** Resolves once the tunnel has ended and removed its files, with why (and the error, for `ssh-lost`). */
  readonly closed: Promise<{ readonly reason: TunnelExitReason; readonly error?: TetherError }>;
  /** Stops serving, removes the socket, state and token files, closes the SSH connection. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_TUNNEL_IDLE_TIMEOUT_MS = 10 * 60_000;
const RECONNECT_DELAYS_MS = [0, 500, 1_500, 3_000];
/** A lock on a stale socket older than this was left by a process that died while replacing it. */
const STALE_LOCK_MS = 10_000;

/**
 * The persistent tunnel's main logic (what `tunnelMain.js` runs in a background process, one per
 * machine): takes the machine's Unix socket `<stateDir>/tunnels/<machine>.sock` (mode 0600, in a
 * 0700 directory), opens one SSH connection to the machine (ssh config, agent, known_hosts,
 * ProxyJump), reads the daemon token once and checks that a WebSocket to the daemon is accepted,
 * then pipes every local connection byte for byte into a new channel to the daemon (forwarded
 * TCP, or the bridge command where forwarding is forbidden). Local clients speak the daemon's
 * usual authenticated WebSocket through it, with the token cached in `<machine>.token`.
 *
 * The socket is the lock: when a live tunnel already serves it, this returns `undefined` without
 * connecting anywhere, so racing starts end with one tunnel. A stale socket (its process died) is
 * replaced. The state file `<machine>.json` says `starting` once the socket is taken and `ready`
 * once the tunnel serves.
 *
 * The tunnel ends (`closed`) after `idleTimeoutMs` without local connections, on `close()`, or
 * when the SSH connection drops and cannot be re-opened; it then removes its socket, state and
 * token files. Fails, with nothing left behind, as `sshConnect` and `SshTransport.connect` do when
 * the machine or its daemon cannot be reached.
 */
export async function startTunnel(machine: MachineConfig, options: StartTunnelOptions): Promise<Tunnel | undefined> {
  const parsed = machineSchema.safeParse(machine);
  if (!parsed.success || typeof machine?.name !== 'string' || machine.name.length === 0) {
    const where = parsed.success ? 'name: required' : parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new TetherError('INVALID_ARGUMENT', `machine ${String(machine?.name)} has an invalid ssh config: ${where}`, { machine: machine?.name });
  }
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_TUNNEL_IDLE_TIMEOUT_MS;
  if (!Number.isFinite(idleTimeoutMs) || idleTimeoutMs < 0) throw new TetherError('INVALID_ARGUMENT', 'idleTimeoutMs must be a number of milliseconds ≥ 0');
  const files = tunnelFiles(options.stateDir, machine.name);
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  await chmod(files.dir, 0o700);

  const server = createServer({ pauseOnConnect: true });
  if (!(await takeSocket(server, files))) return undefined;
  const tunnel = new RunningTunnel(server, files, machine, parsed.data, options, idleTimeoutMs);
  try {
    await tunnel.start();
  } catch (error) {
    await tunnel.abandon(error);
    throw error;
  }
  return tunnel;
}

class RunningTunnel implements Tunnel {
  readonly files: TunnelFiles;
  state: TunnelState;
  readonly closed: Promise<{ reason: TunnelExitReason; error?: TetherError }>;
  sshConnections = 0;
  readonly #server: Server;
  readonly #machine: MachineConfig;
  readonly #config: SshMachineConfig;
  readonly #options: StartTunnelOptions;
  readonly #idleTimeoutMs: number;
  readonly #log: (entry: Readonly<Record<string, unknown>>) => void;
  readonly #sockets = new Set<Socket>();
  readonly #link: DaemonLink = {};
  #socketIno = 0;
  #ssh: Promise<SshConnection> | undefined;
  #idleTimer: LongTimer | undefined;
  #closing: Promise<void> | undefined;
  #resolveClosed!: (value: { reason: TunnelExitReason; error?: TetherError }) => void;

  constructor(server: Server, files: TunnelFiles, machine: MachineConfig, config: SshMachineConfig, options: StartTunnelOptions, idleTimeoutMs: number) {
    this.#server = server;
    this.files = files;
    this.#machine = machine;
    this.#config = config;
    this.#options = options;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#log = options.log ?? (() => undefined);
    this.state = {
      pid: process.pid,
      socket: files.socket,
      machine: machine.name,
      configHash: tunnelConfigHash(machine, options.ssh),
      startedAt: new Date().toISOString(),
      status: 'starting',
    };
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async start(): Promise<void> {
    await chmod(this.files.socket, 0o600);
    this.#socketIno = (await stat(this.files.socket)).ino;
    await writePrivateFile(this.files.state, JSON.stringify(this.state));
    this.#server.on('connection', (socket) => this.#serve(socket));

    const ssh = await this.#connect();
    const name = this.#machine.name;
    const read = this.#config.token === undefined ? await readRemoteToken(ssh, this.#config, name) : undefined;
    const token = this.#config.token ?? read!.token;
    // One WebSocket before serving: a daemon that is not running, a refused token or a bridge that
    // cannot run is reported now, by the process that started the tunnel, instead of as a bare
    // disconnect later.
    const { stream, display, failure, probe } = await openDaemonStream(ssh, this.#link, this.#config, name);
    try {
      const channel = await wsOverStream(stream, { token, url: `ws://127.0.0.1:${this.#config.daemon_port}/`, display, probe });
      channel.close();
    } catch (error) {
      if (read && isTetherError(error, 'UNAUTHORIZED')) throw refusedToken(error, read.file, ssh, name);
      throw (await failure?.(error)) ?? error;
    }
    if (this.#config.token === undefined) await writePrivateFile(this.files.token, `${token}\n`);
    this.state = {
      ...this.state,
      status: 'ready',
      ...(this.#config.token === undefined ? { tokenFile: this.files.token } : {}),
      ...(this.#link.route ? { route: this.#link.route } : {}),
    };
    await writePrivateFile(this.files.state, JSON.stringify(this.state));
    this.#log({ event: 'ready', machine: name, socket: this.files.socket, route: this.#link.route, ssh: ssh.where });
    this.#armIdle();
  }

  close(): Promise<void> {
    return this.#shutdown('stopped');
  }

  /** Ends a tunnel whose start failed. */
  abandon(error: unknown): Promise<void> {
    return this.#shutdown('start-failed', isTetherError(error) ? error : undefined);
  }

  /** Opens the SSH connection; when it drops, re-opens it (a few attempts) or ends the tunnel. */
  #connect(): Promise<SshConnection> {
    const connecting = sshConnect(this.#config.ssh, { ...this.#options.ssh, forwardAgent: false }).then((ssh) => {
      this.sshConnections++;
      if (this.#closing) {
        ssh.close();
        throw new TetherError('CONNECTION_LOST', 'the tunnel is closing');
      }
      void ssh.closed.then((why) => this.#onSshClosed(connecting, why));
      return ssh;
    });
    this.#ssh = connecting;
    return connecting;
  }

  async #onSshClosed(which: Promise<SshConnection>, why: TetherError | undefined): Promise<void> {
    if (this.#closing || this.#ssh !== which) return;
    this.#log({ event: 'ssh-closed', message: why?.message });
    const attempts = Math.max(1, this.#options.reconnectAttempts ?? 3);
    let last: unknown = why;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const delay = RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)]!;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.#closing) return;
      const reconnecting = this.#connect();
      try {
        const ssh = await reconnecting;
        this.#log({ event: 'ssh-reconnected', ssh: ssh.where, attempt: attempt + 1 });
        return;
      } catch (error) {
        last = error;
        this.#log({ event: 'ssh-reconnect-failed', attempt: attempt + 1, message: error instanceof Error ? error.message : String(error) });
        // A refused key or host key will not change by retrying.
        if (isTetherError(error, 'UNAUTHORIZED') || isTetherError(error, 'INVALID_ARGUMENT')) break;
      }
    }
    const error = isTetherError(last)
      ? last
      : new TetherError('CONNECTION_LOST', `connection reset by peer: the SSH connection of the tunnel to ${this.#machine.name} dropped`, {}, { cause: last });
    // Connections waiting on the failed attempt get its error; no new one is accepted.
    void this.#shutdown('ssh-lost', error);
  }

  async #serve(local: Socket): Promise<void> {
    if (this.#closing) return void local.destroy();
    this.#sockets.add(local);
    this.#disarmIdle();
    let remote: Awaited<ReturnType<typeof openDaemonStream>>['stream'] | undefined;
    local.once('close', () => {
      this.#sockets.delete(local);
      remote?.destroy();
      if (this.#sockets.size === 0) this.#armIdle();
    });
    local.on('error', () => local.destroy());
    try {
      const ssh = await this.#ssh!;
      ({ stream: remote } = await openDaemonStream(ssh, this.#link, this.#config, this.#machine.name));
    } catch (error) {
      this.#log({ event: 'channel-failed', message: error instanceof Error ? error.message : String(error) });
      local.destroy();
      return;
    }
    if (local.destroyed) return void remote.destroy();
    const channel = remote;
    channel.on('error', () => local.destroy());
    // The daemon hung up: let what it sent last reach the client, then close (destroy would drop it).
    channel.once('close', () => {
      local.end();
      setTimeout(() => local.destroy(), 5_000).unref();
    });
    local.pipe(channel);
    channel.pipe(local);
  }

  #armIdle(): void {
    this.#disarmIdle();
    if (this.#closing || this.#sockets.size > 0 || this.state.status !== 'ready') return;
    this.#idleTimer = setLongTimeout(() => void this.#shutdown('idle'), this.#idleTimeoutMs);
  }

  #disarmIdle(): void {
    this.#idleTimer?.clear();
    this.#idleTimer = undefined;
  }

  #shutdown(reason: TunnelExitReason, error?: TetherError): Promise<void> {
    this.#closing ??= (async () => {
      this.#disarmIdle();
      this.#log({ event: 'exit', reason, ...(error ? { code: error.code, message: error.message } : {}) });
      // The files go first, so a client or a new tunnel never finds a socket that is going away.
      // Each is removed only while it is still this tunnel's: a new tunnel may have replaced it.
      const stateNow = await readTunnelState(this.files);
      if (stateNow?.pid === process.pid) {
        await removeFile(this.files.token).catch(() => undefined);
        await removeFile(this.files.state).catch(() => undefined);
      }
      if (this.#socketIno !== 0 && (await stat(this.files.socket).then((s) => s.ino, () => 0)) === this.#socketIno) {
        await removeFile(this.files.socket).catch(() => undefined);
      }
      this.#server.close();
      for (const socket of this.#sockets) socket.destroy();
      const ssh = await this.#ssh?.catch(() => undefined);
      ssh?.close();
      this.#resolveClosed({ reason, ...(error ? { error } : {}) });
    })();
    return this.#closing;
  }
}

/**
 * Listens on the tunnel's socket. False when a live tunnel serves it already. A socket nobody
 * accepts on is stale (its tunnel died): it is replaced under an O_EXCL lock, so that two
 * tunnels replacing it at once cannot remove each other's.
 */
async function takeSocket(server: Server, files: TunnelFiles): Promise<boolean> {
  for (;;) {
    if (await listen(server, files.socket)) return true;
    if (await accepts(files.socket)) return false;
    let lock;
    try {
      lock = await open(files.lock, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const held = await stat(files.lock).catch(() => undefined);
      if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) await removeFile(files.lock);
      else await new Promise((resolve) => setTimeout(resolve, 20));
      continue;
    }
    try {
      await lock.writeFile(String(process.pid));
      // Under the lock, look again: whoever held it before may have replaced the socket already.
      if (await listen(server, files.socket)) return true;
      if (await accepts(files.socket)) return false;
      await removeFile(files.socket);
      if (await listen(server, files.socket)) return true;
    } finally {
      await lock.close();
      await removeFile(files.lock);
    }
  }
}

function listen(server: Server, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.removeListener('listening', onListening);
      if (error.code === 'EADDRINUSE') resolve(false);
      else reject(new TetherError('PERMISSION_DENIED', `the tunnel cannot listen on ${path} (${error.code ?? error.message})`, { path, errno: error.code }, { cause: error }));
    };
    const onListening = () => {
      server.removeListener('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(path);
  });
}

/** True when something accepts connections on the socket. */
function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

