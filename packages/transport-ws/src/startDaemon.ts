import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createKernel, isTetherError, restrictUmask, serveMachine, TetherError, type Kernel, type PluginEntry, type RpcServerOptions, type RpcSession } from '@tether/core';
import type { LevelEventStore, LevelEventStoreOptions } from '@tether/store-level';
import { checkToken, loadOrCreateToken } from './daemonToken.js';
import { parseListenAddress, type ListenAddress } from './listenAddress.js';
import { preparePrivateDataDir } from './privateDataDir.js';
import type { KeepaliveOptions } from './wsChannel.js';
import type { Duplex } from 'node:stream';
import { WsListener, type AcceptOptions, type LogEntry } from './wsListener.js';

export interface DaemonOptions {
  /** `host:port` (`127.0.0.1:7337`; port 0 for any free port) or a Unix socket path. */
  readonly listen: string;
  /** More addresses served by the same daemon (e.g. its Unix socket beside a TCP port). Default none. */
  readonly alsoListen?: readonly string[];
  /**
   * The daemon's state: the event store in `<dataDir>/events`, the token in `<dataDir>/token`.
   * Created with mode 0700 if missing; an existing one open to group or others is tightened to
   * 0700 (with `events/`), and one of another user is refused (`PERMISSION_DENIED`).
   */
  readonly dataDir: string;
  /** Where the token lives. Default `<dataDir>/token`; created with a new token (mode 0600) on first start. */
  readonly tokenFile?: string;
  /** Use this token instead of a token file. */
  readonly token?: string;
  /** Backends and other plugins for the daemon's kernel (a plugin that fails to load is logged and skipped). */
  readonly plugins: readonly PluginEntry[];
  /** The process backend of executions that name none (a loaded backend's name, e.g. `slurm`). Default `process`. */
  readonly defaultBackend?: string;
  /** Browser origins allowed to connect. Default none. */
  readonly allowedOrigins?: readonly string[];
  /** Host header values accepted besides the listen address and localhost. Default none. */
  readonly allowedHosts?: readonly string[];
  /** Serve `wss://` with this certificate and key: PEM text, or `{ certFile, keyFile }` paths. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer } | { readonly certFile: string; readonly keyFile: string };
  /** Options of the event store. */
  readonly store?: LevelEventStoreOptions;
  /** Limits of the JSON-RPC server, per connection. Default: core's. */
  readonly rpc?: RpcServerOptions;
  /** Limits and keepalive of the listener (see `WsListenerOptions`). */
  readonly maxPayloadBytes?: number;
  readonly maxPendingConnections?: number;
  readonly handshakeTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly keepalive?: KeepaliveOptions;
  /**
   * Close the daemon on SIGTERM and SIGINT (leaving executions running for the next start to
   * re-attach), and on SIGUSR2 (cancelling them). Default false (the embedding program decides).
   */
  readonly handleSignals?: boolean;
  /**
   * Run each execution under a supervisor that outlives the daemon (the process plugin's
   * `supervisorDir`, set to `<dataDir>/supervisors` unless its config names one). Default true.
   */
  readonly supervise?: boolean;
  /** Where log lines go. Default: nowhere. */
  readonly log?: (entry: LogEntry) => void;
}

export interface Daemon {
  /** How clients reach it: `ws://127.0.0.1:7337`, `wss://…` or `unix:/path` (the `listen` address). */
  readonly url: string;
  readonly address: ListenAddress;
  /** Every address served: `url` first, then those of `alsoListen`. */
  readonly urls: readonly string[];
  /** The token file, or undefined when the token was given as an option. */
  readonly tokenFile: string | undefined;
  /** The daemon's kernel (its `local` machine is what clients are served). */
  readonly kernel: Kernel;
  /**
   * Serves an already connected stream (plain HTTP, e.g. the decrypted side of a TLS session
   * this process terminated) as a new client of the daemon's first listener without TLS, with
   * everything a client connecting there goes through: token, limits, budgets (see
   * `WsListener.accept`). `INVALID_ARGUMENT` when every listener serves `wss://`.
   */
  accept(stream: Duplex, options?: AcceptOptions): void;
  /** Resolves once the daemon has closed (by `close()` or a signal). */
  readonly closed: Promise<void>;
  /**
   * Graceful shutdown: stops accepting, closes every client connection, lets go of running
   * executions (their supervisors keep them running; the next start re-attaches) or, with
   * `cancelRunning`, cancels them (TERM, KILL after the grace; recorded as `cancelled`), closes
   * the kernel, then the store. Idempotent (the first call's options hold).
   */
  close(options?: { readonly cancelRunning?: boolean }): Promise<void>;
}

/**
 * Starts a tether daemon: opens the LevelDB store at `<dataDir>/events` (`STORE_LOCKED` if a
 * daemon already runs on that data dir), loads or creates the token, creates the kernel (which
 * marks executions a previous daemon left running as `lost`), listens and serves every
 * authenticated connection with `serveMachine`.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  if (typeof options?.listen !== 'string') throw new TetherError('INVALID_ARGUMENT', 'listen must be host:port or a socket path');
  if (typeof options.dataDir !== 'string' || options.dataDir.length === 0) throw new TetherError('INVALID_ARGUMENT', 'dataDir must be a path');
  const log = options.log ?? (() => undefined);
  const dataDir = resolve(options.dataDir);
  const tightened = await preparePrivateDataDir(dataDir);
  if (tightened.tightenedFrom !== undefined || tightened.tightenedEntries > 0) {
    const from = tightened.tightenedFrom?.toString(8).padStart(4, '0');
    log({ level: 'warn', msg: 'the data dir was readable by others: made private (0700)', dataDir, ...(from ? { modeBefore: from } : {}), entries: tightened.tightenedEntries });
  }

  const cleanups: Array<() => Promise<void>> = [];
  // LevelDB creates files on its own threads for as long as the store is open: a umask keeps
  // every one of them private to this user (commands started by the daemon get the user's umask back).
  const restoreUmask = restrictUmask();
  cleanups.push(async () => restoreUmask());
  const unwind = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    let store: LevelEventStore;
    try {
      // Imported here, not at the top: a client importing this package (connectWs) never loads LevelDB.
      const { LevelEventStore } = await import('@tether/store-level');
      store = await LevelEventStore.open(join(dataDir, 'events'), options.store);
    } catch (error) {
      if (isTetherError(error, 'STORE_LOCKED')) {
        throw new TetherError('STORE_LOCKED', `another daemon is already running with the data dir ${dataDir}`, { dataDir }, { cause: error });
      }
      // An optional peer: clients of this package never need LevelDB, a daemon does.
      if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes('@tether/store-level')) {
        throw new TetherError('BACKEND_UNAVAILABLE', 'a daemon needs @tether/store-level (LevelDB), an optional peer dependency of @tether/transport-ws: install it beside it', {}, { cause: error });
      }
      throw error;
    }
    cleanups.push(() => store.close());

    let token: string;
    let tokenFile: string | undefined;
    if (options.token !== undefined) {
      checkToken(options.token, 'the token option');
      token = options.token;
    } else {
      tokenFile = resolve(options.tokenFile ?? join(dataDir, 'token'));
      await mkdir(dirname(tokenFile), { recursive: true, mode: 0o700 });
      const loaded = await loadOrCreateToken(tokenFile);
      token = loaded.token;
      log({ level: 'info', msg: loaded.created ? 'token created' : 'token loaded', tokenFile });
    }

    const plugins = options.supervise === false ? options.plugins : withSupervisorDir(options.plugins, join(dataDir, 'supervisors'));
    const kernel = await createKernel({ plugins, store, ...(options.defaultBackend !== undefined ? { local: { defaultBackend: options.defaultBackend } } : {}) });
    cleanups.push(() => kernel.close());
    for (const failure of kernel.plugins.failed) {
      log({ level: 'warn', msg: 'plugin failed to load', plugin: failure.name, code: failure.error.code, error: failure.error.message });
    }
    const machine = kernel.machine('local');

    const sessions = new Set<RpcSession>();
    const tls = await tlsMaterial(options.tls);
    const listeners: WsListener[] = [];
    for (const [index, listen] of [options.listen, ...(options.alsoListen ?? [])].entries()) {
      const listener = await WsListener.listen({
        listen,
        token,
        // A Unix socket served beside a TCP address needs no TLS: its file mode protects it.
        tls: index > 0 && parseListenAddress(listen).kind === 'unix' ? undefined : tls,
        allowedOrigins: options.allowedOrigins,
        allowedHosts: options.allowedHosts,
        maxPayloadBytes: options.maxPayloadBytes,
        maxPendingConnections: options.maxPendingConnections,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
        maxConnections: options.maxConnections,
        keepalive: options.keepalive,
        log,
        onChannel(channel, info) {
          const session = serveMachine(machine, channel, {
            ...options.rpc,
            onBackedUp: ({ unsentBytes, limit }) =>
              log({ level: 'info', msg: 'client backed up: its requests wait until it reads its replies', remote: info.remote, unsentBytes, limit }),
          });
          sessions.add(session);
          void session.closed.then(() => {
            sessions.delete(session);
            log({ level: 'info', msg: 'client disconnected', remote: info.remote });
          });
        },
      });
      listeners.push(listener);
      cleanups.push(() => listener.close());
    }
    const listener = listeners[0]!;

    let resolveClosed!: () => void;
    const closed = new Promise<void>((done) => (resolveClosed = done));
    let closing: Promise<void> | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      const cancelRunning = signal === 'SIGUSR2';
      log({ level: 'info', msg: 'shutting down', signal, cancelRunning });
      void close({ cancelRunning });
    };
    const close = (closeOptions: { readonly cancelRunning?: boolean } = {}) => {
      closing ??= (async () => {
        if (options.handleSignals) {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          process.off('SIGUSR2', onSignal);
        }
        // Stop accepting and close every client first, so nobody starts work while we cancel.
        for (const session of sessions) session.close();
        await Promise.all(listeners.map((l) => l.close()));
        await kernel.close({ cancelRunning: closeOptions.cancelRunning ?? false });
        await store.close();
        restoreUmask();
        log({ level: 'info', msg: 'stopped' });
        resolveClosed();
      })();
      return closing;
    };
    if (options.handleSignals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      process.on('SIGUSR2', onSignal);
    }
    // The first listener without TLS (a Unix socket one beside a wss:// address never has TLS).
    const plain = listeners.find((l) => !l.url.startsWith('wss:'));
    const accept = (stream: Duplex, acceptOptions?: AcceptOptions) => {
      if (!plain) throw new TetherError('INVALID_ARGUMENT', 'the daemon has no listener without TLS to serve an accepted stream');
      plain.accept(stream, acceptOptions);
    };
    return { url: listener.url, address: listener.address, urls: listeners.map((l) => l.url), tokenFile, kernel, accept, closed, close };
  } catch (error) {
    await unwind();
    throw error;
  }
}

const PROCESS_PLUGIN = '@tether/plugin-process';

/** The plugin entries with the process plugin told where its supervisors live (unless its config says). */
function withSupervisorDir(entries: readonly PluginEntry[], dir: string): PluginEntry[] {
  return entries.map((entry) => {
    const plugin = 'plugin' in entry ? entry.plugin : entry;
    if (plugin.name !== PROCESS_PLUGIN) return entry;
    const config = 'plugin' in entry && typeof entry.config === 'object' && entry.config !== null ? (entry.config as Record<string, unknown>) : {};
    return { plugin, config: { supervisorDir: dir, ...config } };
  });
}

async function tlsMaterial(tls: DaemonOptions['tls']): Promise<{ cert: string | Buffer; key: string | Buffer } | undefined> {
  if (tls === undefined) return undefined;
  if ('certFile' in tls) {
    try {
      return { cert: await readFile(tls.certFile), key: await readFile(tls.keyFile) };
    } catch (error) {
      throw new TetherError('PATH_NOT_FOUND', `cannot read the TLS certificate or key (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {}, { cause: error });
    }
  }
  return tls;
}
