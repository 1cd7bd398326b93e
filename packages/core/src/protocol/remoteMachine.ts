import { randomUUID } from 'node:crypto';
import { Observable, lastValueFrom, type Subscriber } from 'rxjs';
import type { FileReadResult, GpuProbeResult, GpuWaitResult } from '../backends.js';
import { TetherError, isTetherError } from '../errors.js';
import { isTerminal, type StoredEvent } from '../events.js';
import type { ListOptions, ListPage } from '../eventStore.js';
import { newExecutionId } from '../ids.js';
import type {
  CancelOptions,
  CancelResult,
  ExecApi,
  ExecReadOptions,
  ExecReadResult,
  ExecStartParams,
  FsApi,
  GpuApi,
  LogsOptions,
  LogsResult,
  MachineApi,
  MachineHealth,
  MachineInfo,
  WriteOptions,
} from '../machine.js';
import type { ExecutionState } from '../state.js';
import type { Channel } from '../transport.js';
import { VERSION } from '../version.js';
import { JsonRpcResponse, fromRpcError, type JsonRpcErrorObject } from './jsonRpc.js';
import { NOTIFICATIONS, PROTOCOL_VERSION, isRetrySafe, type MethodName, type MethodParams } from './methods.js';
import { decodeEventsFrame, eventFromJson, fromBase64, toBase64 } from './wire.js';

export interface ReconnectOptions {
  /** First delay after a failed attempt. Default 100 ms. */
  readonly initialDelayMs?: number;
  /** Longest delay between attempts. Default 5000 ms. */
  readonly maxDelayMs?: number;
  /** Fail pending calls with CONNECTION_LOST after this long without a connection. Default 30 s. */
  readonly giveUpAfterMs?: number;
}

export interface RemoteMachineOptions {
  readonly name: string;
  /** Opens a new channel to the daemon; called again after every drop. */
  readonly connect: (signal: AbortSignal) => Promise<Channel>;
  readonly reconnect?: ReconnectOptions;
  /** Sent in the hello. */
  readonly client?: { readonly name: string; readonly version: string };
}

interface PendingCall {
  readonly channel: Channel;
  readonly method: MethodName;
  resolve(result: unknown): void;
  reject(error: unknown): void;
  /** Runs synchronously when the reply arrives, before any later message is handled. */
  readonly onReply?: (result: unknown) => void;
}

interface FollowState {
  readonly id: string;
  last: number;
  readonly subscriber: Subscriber<StoredEvent>;
  /** The server's id for this follow on `channel`. */
  subscription?: string;
  channel?: Channel;
  attaching: boolean;
}

/**
 * A machine served by a daemon, reached over a channel. Every call is proxied as JSON-RPC; the
 * connection is re-made with exponential, jittered, capped backoff when it drops, followed
 * executions resume from the last seq seen (nothing missed, nothing twice), and calls are retried
 * only where that is safe: reads, `exec.start` (always sent with an id) and `exec.write` (always
 * sent with a writeId). Any other call whose reply was lost fails with `OUTCOME_UNKNOWN`.
 */
export class RemoteMachine implements MachineApi {
  readonly name: string;
  readonly exec: ExecApi;
  readonly fs: FsApi;
  readonly gpu: GpuApi;

  readonly #options: RemoteMachineOptions;
  readonly #abort = new AbortController();
  #channel: Channel | undefined;
  #connecting: Promise<Channel> | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, PendingCall>();
  readonly #follows = new Set<FollowState>();
  readonly #bySubscription = new Map<string, FollowState>();
  #info: MachineInfo | undefined;
  #closed = false;
  /** Calls allowed to await a reply at once (below the server's per-connection limit of 64); the rest queue here. */
  #freeSlots = MAX_IN_FLIGHT;
  readonly #waitingForSlot: Array<() => void> = [];
  /** How many times a connection was made (1 for the first); tells tests and telemetry about reconnects. */
  connections = 0;

  constructor(options: RemoteMachineOptions) {
    this.name = options.name;
    this.#options = options;
    this.exec = this.#execApi();
    this.fs = this.#fsApi();
    this.gpu = {
      probe: () => this.#call('gpu/probe', {}) as Promise<GpuProbeResult>,
      waitFree: (gate, signal) => abortable(this.#call('gpu/waitFree', { gate }) as Promise<GpuWaitResult>, signal),
    };
  }

  async info(): Promise<MachineInfo> {
    await this.#ensureChannel();
    return this.#info!;
  }

  health(): Promise<MachineHealth> {
    return this.#call('daemon/health', {}) as Promise<MachineHealth>;
  }

  /** Closes the connection; pending calls and follows fail with CONNECTION_LOST. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    const channel = this.#channel;
    this.#channel = undefined;
    channel?.close('client closing');
    const error = new TetherError('CONNECTION_LOST', `machine ${this.name} was closed`);
    for (const call of this.#pending.values()) call.reject(error);
    this.#pending.clear();
    for (const follow of [...this.#follows]) follow.subscriber.error(error);
  }

  // --- connection -------------------------------------------------------------------------

  #ensureChannel(): Promise<Channel> {
    if (this.#closed) return Promise.reject(new TetherError('CONNECTION_LOST', `machine ${this.name} was closed`));
    if (this.#channel) return Promise.resolve(this.#channel);
    this.#connecting ??= this.#connectWithBackoff().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #connectWithBackoff(): Promise<Channel> {
    const { initialDelayMs = 100, maxDelayMs = 5000, giveUpAfterMs = 30_000 } = this.#options.reconnect ?? {};
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#connectOnce();
      } catch (error) {
        if (this.#closed) throw new TetherError('CONNECTION_LOST', `machine ${this.name} was closed`);
        // Only a lost or refused connection may heal by itself; a refused key, a bad token or
        // a protocol mismatch will not, so they fail at once instead of after the retry window.
        if (isTetherError(error) && error.code !== 'CONNECTION_LOST' && error.code !== 'TIMEOUT') throw error;
        if (Date.now() - started >= giveUpAfterMs) {
          throw new TetherError('CONNECTION_LOST', `connection refused: could not reach ${this.name} (${describe(error)})`, { machine: this.name }, { cause: error });
        }
        const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt, 20));
        await delay(ceiling / 2 + Math.random() * (ceiling / 2)); // "equal jitter"
      }
    }
  }

  async #connectOnce(): Promise<Channel> {
    const channel = await this.#options.connect(this.#abort.signal);
    channel.messages$.subscribe({
      next: (message) => this.#onMessage(channel, message),
      error: (error: unknown) => this.#onDrop(channel, error),
      complete: () => this.#onDrop(channel, undefined),
    });
    const hello = (await this.#request(channel, 'daemon/hello', {
      client: this.#options.client ?? { name: 'tether', version: VERSION },
    })) as { protocol: number; machine: MachineInfo };
    if (hello.protocol !== PROTOCOL_VERSION) {
      channel.close('protocol mismatch');
      throw new TetherError('INVALID_ARGUMENT', `the daemon speaks protocol ${hello.protocol}; this client speaks ${PROTOCOL_VERSION}`);
    }
    this.#info = hello.machine;
    this.#channel = channel;
    this.connections++;
    for (const follow of this.#follows) if (follow.channel !== channel) void this.#attach(follow);
    return channel;
  }

  #onDrop(channel: Channel, error: unknown): void {
    if (this.#channel === channel) this.#channel = undefined;
    const lost = new TetherError('CONNECTION_LOST', `connection reset by peer (${this.name})`, { sent: true }, { cause: error });
    for (const [id, call] of this.#pending) {
      if (call.channel !== channel) continue;
      this.#pending.delete(id);
      call.reject(lost);
    }
    let following = false;
    for (const follow of this.#follows) {
      if (follow.channel !== channel) continue;
      if (follow.subscription) this.#bySubscription.delete(follow.subscription);
      follow.channel = undefined;
      follow.subscription = undefined;
      following = true;
    }
    // Nobody else may call soon: re-connect now for the followers' sake.
    if (following && !this.#closed) {
      void this.#ensureChannel().catch((failure: unknown) => {
        for (const follow of [...this.#follows]) if (!follow.channel) follow.subscriber.error(failure);
      });
    }
  }

  #onMessage(channel: Channel, message: string | Uint8Array): void {
    try {
      if (typeof message !== 'string') {
        const { subscription, events } = decodeEventsFrame(message);
        for (const event of events) this.#onEvent(subscription, event);
        return;
      }
      const parsed = JSON.parse(message) as unknown;
      for (const item of Array.isArray(parsed) ? parsed : [parsed]) this.#onJson(channel, item);
    } catch {
      // A malformed message from the daemon: ignore it; the call it belonged to times out or drops.
    }
  }

  #onJson(_channel: Channel, item: unknown): void {
    const notification = item as { method?: unknown; params?: { subscription?: unknown; error?: JsonRpcErrorObject } };
    if (notification.method === NOTIFICATIONS.followEnd && typeof notification.params?.subscription === 'string') {
      const follow = this.#bySubscription.get(notification.params.subscription);
      if (!follow) return;
      if (notification.params.error) follow.subscriber.error(fromRpcError(notification.params.error));
      else follow.subscriber.complete();
      return;
    }
    const response = JsonRpcResponse.safeParse(item);
    if (!response.success || typeof response.data.id !== 'number') return;
    const call = this.#pending.get(response.data.id);
    if (!call) return;
    this.#pending.delete(response.data.id);
    if ('error' in response.data) return call.reject(fromRpcError(response.data.error));
    call.onReply?.(response.data.result);
    call.resolve(response.data.result);
  }

  #onEvent(subscription: string, event: StoredEvent): void {
    const follow = this.#bySubscription.get(subscription);
    if (!follow || event.seq <= follow.last) return; // a duplicate after a resume
    follow.last = event.seq;
    follow.subscriber.next(event);
    if (isTerminal(event)) follow.subscriber.complete();
  }

  /** Sends one request on `channel`; rejects with CONNECTION_LOST if the channel drops first. */
  #request(channel: Channel, method: MethodName, params: unknown, onReply?: (result: unknown) => void): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        channel.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      } catch (error) {
        return reject(new TetherError('CONNECTION_LOST', `connection reset by peer (${this.name})`, { sent: false }, { cause: error }));
      }
      this.#pending.set(id, { channel, method, resolve, reject, onReply });
    });
  }

  async #takeSlot(): Promise<void> {
    if (this.#freeSlots > 0) this.#freeSlots--;
    else await new Promise<void>((resolve) => this.#waitingForSlot.push(resolve));
  }

  #releaseSlot(): void {
    const next = this.#waitingForSlot.shift();
    if (next) next();
    else this.#freeSlots++;
  }

  /** A call that survives reconnects where that is safe. */
  async #call<M extends MethodName>(method: M, params: MethodParams<M>): Promise<unknown> {
    await this.#takeSlot();
    try {
      return await this.#callRetrying(method, params);
    } finally {
      this.#releaseSlot();
    }
  }

  async #callRetrying<M extends MethodName>(method: M, params: MethodParams<M>): Promise<unknown> {
    for (;;) {
      const channel = await this.#ensureChannel();
      try {
        return await this.#request(channel, method, params);
      } catch (error) {
        if (!isTetherError(error, 'CONNECTION_LOST') || this.#closed) throw error;
        if (error.details['sent'] === false || isRetrySafe(method, params)) continue;
        throw new TetherError(
          'OUTCOME_UNKNOWN',
          `the connection to ${this.name} dropped before ${method} replied; it may or may not have taken effect`,
          { method },
          { cause: error },
        );
      }
    }
  }

  async #attach(follow: FollowState): Promise<void> {
    if (follow.attaching) return;
    follow.attaching = true;
    try {
      while (this.#follows.has(follow) && !follow.channel) {
        const channel = await this.#ensureChannel();
        await this.#takeSlot();
        try {
          await this.#request(channel, 'exec/follow', { id: follow.id, afterSeq: follow.last }, (result) => {
            // Registered before the next message is read: the first event may be right behind the reply.
            const subscription = (result as { subscription: string }).subscription;
            follow.subscription = subscription;
            follow.channel = channel;
            this.#bySubscription.set(subscription, follow);
          });
        } catch (error) {
          if (!isTetherError(error, 'CONNECTION_LOST') || this.#closed) throw error;
        } finally {
          this.#releaseSlot();
        }
      }
    } catch (error) {
      follow.subscriber.error(error);
    } finally {
      follow.attaching = false;
    }
  }

  #follow(id: string, afterSeq = 0): Observable<StoredEvent> {
    return new Observable<StoredEvent>((subscriber) => {
      const follow: FollowState = { id, last: afterSeq, subscriber, attaching: false };
      this.#follows.add(follow);
      void this.#attach(follow);
      return () => {
        this.#follows.delete(follow);
        if (follow.subscription) {
          this.#bySubscription.delete(follow.subscription);
          if (follow.channel && !follow.subscriber.closed) {
            void this.#request(follow.channel, 'exec/unfollow', { subscription: follow.subscription }).catch(() => undefined);
          }
        }
      };
    });
  }

  // --- the APIs ---------------------------------------------------------------------------

  #execApi(): ExecApi {
    const call = <M extends MethodName>(method: M, params: MethodParams<M>) => this.#call(method, params);
    return {
      start: (params: ExecStartParams) =>
        // A client-chosen id makes the start idempotent, so it can be retried after a lost reply.
        call('exec/start', { ...params, id: params.id ?? newExecutionId() }) as Promise<ExecutionState>,
      get: (id: string) => call('exec/get', { id }) as Promise<ExecutionState>,
      list: (options: ListOptions = {}) => call('exec/list', { ...options }) as Promise<ListPage>,
      read: async (id: string, options: ExecReadOptions = {}) => {
        const page = (await call('exec/read', { id, ...options })) as { events: unknown[]; lastSeq: number; finished: boolean };
        return { ...page, events: page.events.map(eventFromJson) } satisfies ExecReadResult;
      },
      follow: (id: string, afterSeq?: number) => this.#follow(id, afterSeq),
      logs: (id: string, options: LogsOptions = {}) => call('exec/logs', { id, ...options, streams: options.streams && [...options.streams] }) as Promise<LogsResult>,
      write: (id: string, data: Uint8Array | string, options: WriteOptions = {}) => {
        const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
        // A writeId makes the write idempotent, so it can be retried after a lost reply.
        return call('exec/write', { id, data: toBase64(bytes), writeId: options.writeId ?? randomUUID(), eof: options.eof }) as Promise<{ bytes: number }>;
      },
      closeStdin: async (id: string) => void (await call('exec/closeStdin', { id })),
      signal: async (id: string, signal: string) => void (await call('exec/signal', { id, signal })),
      cancel: (id: string, options: CancelOptions = {}) => call('exec/cancel', { id, ...options }) as Promise<CancelResult>,
      resize: async (id: string, cols: number, rows: number) => void (await call('exec/resize', { id, cols, rows })),
      wait: async (id: string) => {
        const state = (await call('exec/get', { id })) as ExecutionState;
        if (state.status !== 'finished') await lastValueFrom(this.#follow(id, state.lastSeq), { defaultValue: undefined });
        return call('exec/get', { id }) as Promise<ExecutionState>;
      },
    };
  }

  #fsApi(): FsApi {
    const call = <M extends MethodName>(method: M, params: MethodParams<M>) => this.#call(method, params);
    return {
      stat: (path) => call('fs/stat', { path }) as never,
      list: (path) => call('fs/list', { path }) as never,
      read: async (path, range = {}) => {
        const result = (await call('fs/read', { path, ...range })) as Omit<FileReadResult, 'data'> & { data: string };
        return { ...result, data: fromBase64(result.data) };
      },
      write: (path, data, options = {}) => call('fs/write', { path, data: toBase64(typeof data === 'string' ? new TextEncoder().encode(data) : data), ...options }) as never,
      beginWrite: (path, options = {}) => call('fs/beginWrite', { path, ...options }) as never,
      writeChunk: (uploadId, offset, data) => call('fs/writeChunk', { uploadId, offset, data: toBase64(data) }) as never,
      commitWrite: (uploadId) => call('fs/commitWrite', { uploadId }) as never,
      abortWrite: async (uploadId) => void (await call('fs/abortWrite', { uploadId })),
      mkdir: async (path, options = {}) => void (await call('fs/mkdir', { path, ...options })),
      remove: async (path, options = {}) => void (await call('fs/remove', { path, ...options })),
      move: async (from, to, options = {}) => void (await call('fs/move', { from, to, ...options })),
      symlink: async (target, path) => void (await call('fs/symlink', { target, path })),
    };
  }
}

const MAX_IN_FLIGHT = 48;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new TetherError('ABORTED'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
