import { TetherError, isTetherError, type Channel } from '@tether/core';
import { WsListener, connectWs, readToken, type LogEntry } from '@tether/transport-ws';
import type { DaemonFiles } from './paths.js';

/** Listeners serving a daemon that runs in another process (see `attachToDaemon`). */
export interface AttachedListeners {
  /** How clients reach them (`ws://127.0.0.1:7337`…). */
  readonly urls: readonly string[];
  /** Resolves once they are closed: the daemon went away, or `close()`. */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export interface AttachOptions {
  readonly files: DaemonFiles;
  /** The addresses to serve (`127.0.0.1:7337`, another socket…). */
  readonly listen: readonly string[];
  /** The running daemon's token file. Default `files.token`. */
  readonly tokenFile?: string;
  /** Wait this long for the running daemon to answer on its socket (it may be starting). Default 10 s. */
  readonly waitMs?: number;
  readonly log: (entry: LogEntry) => void;
}

/**
 * `daemon serve --listen ADDR` when another daemon already holds the data dir (typically the
 * one the CLI started for `local`, which listens on the Unix socket only): rather than fail on
 * the store's lock, serve ADDR for that daemon. Each connection accepted on ADDR is checked as
 * the daemon itself would (token, Host, Origin) by a `WsListener` with the daemon's token, then
 * relayed message by message to a connection of its own on the daemon's socket. The listeners
 * close when that daemon goes away (a connection kept open to it ends), so the next `daemon
 * serve` can start a whole daemon. Fails with `CONNECTION_LOST` when no daemon answers on the
 * socket within `waitMs`.
 */
export async function attachToDaemon(options: AttachOptions): Promise<AttachedListeners> {
  const tokenFile = options.tokenFile ?? options.files.token;
  const deadline = Date.now() + (options.waitMs ?? 10_000);
  let token: string;
  let watch: Channel;
  for (;;) {
    try {
      token = await readToken(tokenFile);
      watch = await connectWs(options.files.socket, { token });
      break;
    } catch (error) {
      const absent = isTetherError(error, 'PATH_NOT_FOUND') || (isTetherError(error, 'CONNECTION_LOST') && ['ENOENT', 'ECONNREFUSED'].includes(String(error.details['errno'])));
      if (!absent || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const upstream = () => connectWs(options.files.socket, { token });
  const listeners: WsListener[] = [];
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const relays = new Set<() => void>();
  const close = () => {
    closing ??= (async () => {
      watch.close();
      for (const stop of relays) stop();
      await Promise.allSettled(listeners.map((l) => l.close()));
      resolveClosed();
    })();
    return closing;
  };
  watch.messages$.subscribe({
    error: () => {
      options.log({ level: 'info', msg: 'the daemon this process served went away' });
      void close();
    },
    complete: () => {
      options.log({ level: 'info', msg: 'the daemon this process served went away' });
      void close();
    },
  });
  try {
    for (const listen of options.listen) {
      listeners.push(
        await WsListener.listen({
          listen,
          token,
          log: options.log,
          onChannel: (channel) => {
            const stop = relay(channel, upstream, options.log);
            relays.add(stop);
            void stop.done.then(() => relays.delete(stop));
          },
        }),
      );
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { urls: listeners.map((l) => l.url), closed, close };
}

/** A relayed direction stops reading its source once this many bytes wait to reach the other side… */
const RELAY_HIGH_WATER = 8 * 1024 * 1024;
/** …and reads again once they are down to this. */
const RELAY_LOW_WATER = 2 * 1024 * 1024;
/** How often a paused direction checks whether its destination has drained. */
const RELAY_DRAIN_POLL_MS = 5;

/**
 * Relays messages both ways between a client and a new connection to the daemon; returns a stop
 * function (with `done`). Each direction has the backpressure of a follow: once the destination
 * holds `RELAY_HIGH_WATER` unsent bytes the source is paused (the OS then holds its peer back:
 * a daemon streaming to a client that does not read ends up waiting on its own socket) and
 * resumed when it has drained, so the relay holds a bounded amount whatever the peers do.
 */
function relay(client: Channel, connect: () => Promise<Channel>, log: (entry: LogEntry) => void): (() => void) & { done: Promise<void> } {
  let upstream: Channel | undefined;
  let stopped = false;
  const pending: Array<string | Uint8Array> = [];
  const timers = new Set<NodeJS.Timeout>();
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const stop = Object.assign(
    () => {
      if (stopped) return;
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      client.close();
      upstream?.close();
      resolveDone();
    },
    { done },
  );
  /** Sends `message` from `source` on to `destination`, pausing `source` while `destination` is backed up. */
  const forward = (source: Channel, destination: Channel, message: string | Uint8Array, paused: { value: boolean }) => {
    try {
      destination.send(message);
    } catch {
      return stop();
    }
    if (paused.value || destination.bufferedAmount < RELAY_HIGH_WATER || !source.pause) return;
    paused.value = true;
    source.pause();
    if (!backedUp && destination === client) {
      backedUp = true;
      log({ level: 'info', msg: 'client backed up: the daemon is not read for it until it reads', unsentBytes: destination.bufferedAmount });
    }
    const check = () => {
      timers.delete(timer);
      if (stopped) return;
      if (destination.bufferedAmount > RELAY_LOW_WATER) return void timers.add((timer = setTimeout(check, RELAY_DRAIN_POLL_MS)));
      paused.value = false;
      source.resume?.();
    };
    let timer = setTimeout(check, RELAY_DRAIN_POLL_MS);
    timers.add(timer);
  };
  let backedUp = false;
  const fromClient = { value: false };
  const fromDaemon = { value: false };
  // Until the daemon's connection is open, the client's messages wait (and the client is not read).
  client.pause?.();
  client.messages$.subscribe({
    next: (message) => (upstream ? forward(client, upstream, message, fromClient) : pending.push(message)),
    error: stop,
    complete: stop,
  });
  connect().then(
    (channel) => {
      if (stopped) return channel.close();
      upstream = channel;
      for (const message of pending.splice(0)) forward(client, channel, message, fromClient);
      if (!fromClient.value) client.resume?.();
      channel.messages$.subscribe({ next: (message) => forward(channel, client, message, fromDaemon), error: stop, complete: stop });
    },
    (error: unknown) => {
      log({ level: 'warn', msg: 'cannot reach the daemon for a client', error: error instanceof TetherError ? error.message : String(error) });
      stop();
    },
  );
  return stop;
}
