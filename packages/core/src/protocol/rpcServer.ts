import type { Subscription } from 'rxjs';
import { TetherError } from '../errors.js';
import type { StoredEvent } from '../events.js';
import type { MachineApi } from '../machine.js';
import type { Channel } from '../transport.js';
import { VERSION } from '../version.js';
import { JsonRpcCodes, JsonRpcRequest, jsonDepthExceeds, toRpcError, type JsonRpcErrorObject } from './jsonRpc.js';
import { NOTIFICATIONS, PROTOCOL_VERSION, methods, type MethodName } from './methods.js';
import { encodeEventsFrame, eventToJson, fromBase64, toBase64 } from './wire.js';

export interface RpcServerOptions {
  /** Largest message accepted, in bytes. Default 8 MiB. */
  readonly maxMessageBytes?: number;
  /** Most requests in one batch. Default 100. */
  readonly maxBatch?: number;
  /** Deepest nesting of arrays/objects in a message. Default 32. */
  readonly maxDepth?: number;
  /** Most requests of one connection running at once. Default 64. */
  readonly maxInFlight?: number;
  /** Most follows of one connection at once. Default 256. */
  readonly maxFollows?: number;
  /** Pause a follow while the channel holds more than this many unsent bytes. Default 8 MiB. */
  readonly sendHighWaterBytes?: number;
}

export interface RpcSession {
  /** Resolves when the channel has closed and every follow is released. */
  readonly closed: Promise<void>;
  close(): void;
}

/** A follow's frame carries at most this many events or bytes of output. */
const FRAME_MAX_EVENTS = 512;
const FRAME_MAX_BYTES = 1024 * 1024;

type Reply = { jsonrpc: '2.0'; id: string | number | null; result?: unknown; error?: JsonRpcErrorObject };
interface Outcome {
  readonly result: unknown;
  /** Runs after the reply was sent (a follow starts streaming only once its id is known to the client). */
  readonly after?: () => void;
}

/**
 * Serves a machine over a channel: JSON-RPC 2.0 requests in, replies and follow notifications out.
 * Every message is validated; a malformed one gets an error reply and the channel stays open.
 * The caller has authenticated the peer before handing over the channel.
 */
export function serveMachine(machine: MachineApi, channel: Channel, options: RpcServerOptions = {}): RpcSession {
  const maxMessageBytes = options.maxMessageBytes ?? 8 * 1024 * 1024;
  const maxBatch = options.maxBatch ?? 100;
  const maxDepth = options.maxDepth ?? 32;
  const maxInFlight = options.maxInFlight ?? 64;
  const maxFollows = options.maxFollows ?? 256;
  const highWater = options.sendHighWaterBytes ?? 8 * 1024 * 1024;

  const follows = new Map<string, { stop(): void }>();
  let nextFollow = 1;
  let inFlight = 0;
  let open = true;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  const send = (message: unknown): void => {
    if (!open) return;
    try {
      channel.send(typeof message === 'string' || message instanceof Uint8Array ? message : JSON.stringify(message));
    } catch {
      // The channel broke; its messages$ ends and cleans up.
    }
  };
  const errorReply = (id: Reply['id'], code: number, message: string): Reply => ({ jsonrpc: '2.0', id, error: { code, message } });

  const handlers: { [M in MethodName]: (params: never) => Promise<Outcome> } = {
    'daemon/hello': async () => ({
      result: { protocol: PROTOCOL_VERSION, version: VERSION, capabilities: ['binary-output-frames'], machine: await machine.info() },
    }),
    'daemon/health': async () => ({ result: await machine.health() }),
    'exec/start': async (p: Record<string, unknown>) => ({ result: await machine.exec.start(p as never) }),
    'exec/get': async (p: { id: string }) => ({ result: await machine.exec.get(p.id) }),
    'exec/list': async (p: object) => ({ result: await machine.exec.list(p) }),
    'exec/read': async ({ id, ...rest }: { id: string }) => {
      const page = await machine.exec.read(id, rest);
      return { result: { ...page, events: page.events.map(eventToJson) } };
    },
    'exec/follow': async (p: { id: string; afterSeq?: number }) => {
      await machine.exec.get(p.id);
      if (follows.size >= maxFollows) throw new TetherError('TOO_LARGE', `at most ${maxFollows} follows per connection`, { limit: maxFollows });
      const subscription = `f${nextFollow++}`;
      return { result: { subscription }, after: () => startFollow(subscription, p.id, p.afterSeq ?? 0) };
    },
    'exec/unfollow': async (p: { subscription: string }) => {
      const follow = follows.get(p.subscription);
      follow?.stop();
      follows.delete(p.subscription);
      return { result: { ok: follow !== undefined } };
    },
    'exec/logs': async ({ id, ...rest }: { id: string }) => ({ result: await machine.exec.logs(id, rest) }),
    'exec/write': async (p: { id: string; data: string; writeId?: string; eof?: boolean }) => ({
      result: await machine.exec.write(p.id, fromBase64(p.data), { writeId: p.writeId, eof: p.eof }),
    }),
    'exec/closeStdin': async (p: { id: string }) => ({ result: (await machine.exec.closeStdin(p.id), { ok: true }) }),
    'exec/signal': async (p: { id: string; signal: string }) => ({ result: (await machine.exec.signal(p.id, p.signal), { ok: true }) }),
    'exec/cancel': async ({ id, ...rest }: { id: string }) => ({ result: await machine.exec.cancel(id, rest) }),
    'exec/resize': async (p: { id: string; cols: number; rows: number }) => ({
      result: (await machine.exec.resize(p.id, p.cols, p.rows), { ok: true }),
    }),
    'fs/stat': async (p: { path: string }) => ({ result: await machine.fs.stat(p.path) }),
    'fs/list': async (p: { path: string }) => ({ result: await machine.fs.list(p.path) }),
    'fs/read': async ({ path, ...range }: { path: string }) => {
      const read = await machine.fs.read(path, range);
      return { result: { ...read, data: toBase64(read.data) } };
    },
    'fs/write': async ({ path, data, ...rest }: { path: string; data: string }) => ({ result: await machine.fs.write(path, fromBase64(data), rest) }),
    'fs/beginWrite': async ({ path, ...rest }: { path: string }) => ({ result: await machine.fs.beginWrite(path, rest) }),
    'fs/writeChunk': async (p: { uploadId: string; offset: number; data: string }) => ({
      result: await machine.fs.writeChunk(p.uploadId, p.offset, fromBase64(p.data)),
    }),
    'fs/commitWrite': async (p: { uploadId: string }) => ({ result: await machine.fs.commitWrite(p.uploadId) }),
    'fs/abortWrite': async (p: { uploadId: string }) => ({ result: (await machine.fs.abortWrite(p.uploadId), { ok: true }) }),
    'fs/mkdir': async ({ path, ...rest }: { path: string }) => ({ result: (await machine.fs.mkdir(path, rest), { ok: true }) }),
    'fs/remove': async ({ path, ...rest }: { path: string }) => ({ result: (await machine.fs.remove(path, rest), { ok: true }) }),
    'fs/move': async ({ from, to, ...rest }: { from: string; to: string }) => ({ result: (await machine.fs.move(from, to, rest), { ok: true }) }),
    'fs/symlink': async ({ target, path }: { target: string; path: string }) => {
      if (!machine.fs.symlink) throw new TetherError('BACKEND_UNAVAILABLE', 'the filesystem backend cannot create symbolic links');
      return { result: (await machine.fs.symlink(target, path), { ok: true }) };
    },
    'gpu/probe': async () => ({ result: await machine.gpu.probe() }),
    'gpu/waitFree': async (p: { gate?: object }) => ({ result: await machine.gpu.waitFree(p.gate) }),
  };

  /** Streams a follow; pauses (and later resumes from the store) while the channel is backed up. */
  function startFollow(subscriptionId: string, execId: string, afterSeq: number): void {
    let last = afterSeq;
    let current: Subscription | undefined;
    let stopped = false;
    let waiting: NodeJS.Timeout | undefined;
    const stop = () => {
      stopped = true;
      current?.unsubscribe();
      if (waiting) clearTimeout(waiting);
    };
    follows.set(subscriptionId, { stop });
    const end = (error?: unknown) => {
      if (stopped) return;
      stop();
      follows.delete(subscriptionId);
      const params = error === undefined ? { subscription: subscriptionId } : { subscription: subscriptionId, error: toRpcError(error) };
      send({ jsonrpc: '2.0', method: NOTIFICATIONS.followEnd, params });
    };
    const resumeWhenDrained = () => {
      if (stopped) return;
      if (channel.bufferedAmount > highWater / 4) waiting = setTimeout(resumeWhenDrained, 5);
      else pump();
    };
    const pump = () => {
      let subscription: Subscription | undefined;
      let pausing = false;
      const pause = () => {
        pausing = true;
        subscription?.unsubscribe(); // undefined during a synchronous replay: unsubscribed below
        waiting = setTimeout(resumeWhenDrained, 5);
      };
      // Events that arrive together (a replay page, a burst of output) leave in one frame.
      let batch: StoredEvent[] = [];
      let batchBytes = 0;
      const flush = () => {
        if (batch.length === 0) return;
        const events = batch;
        batch = [];
        batchBytes = 0;
        send(encodeEventsFrame(subscriptionId, events));
        if (!pausing && channel.bufferedAmount > highWater) pause();
      };
      subscription = machine.exec.follow(execId, last).subscribe({
        next: (event: StoredEvent) => {
          if (pausing || stopped) return;
          last = event.seq;
          if (batch.length === 0) queueMicrotask(flush);
          batch.push(event);
          batchBytes += event.type === 'OutputProduced' ? event.data.data.byteLength : 64;
          if (batch.length >= FRAME_MAX_EVENTS || batchBytes >= FRAME_MAX_BYTES) flush();
        },
        error: (error: unknown) => {
          flush();
          if (!pausing) end(error);
        },
        complete: () => {
          flush();
          if (!pausing) end();
        },
      });
      if (pausing) subscription.unsubscribe();
      current = subscription;
    };
    pump();
  }

  async function handle(message: unknown): Promise<Reply | undefined> {
    const id = typeof message === 'object' && message !== null && 'id' in message ? ((message as { id: unknown }).id as Reply['id']) : null;
    const request = JsonRpcRequest.safeParse(message);
    const replyId = typeof id === 'string' || typeof id === 'number' ? id : null;
    if (!request.success) return errorReply(replyId, JsonRpcCodes.INVALID_REQUEST, 'invalid JSON-RPC 2.0 request');
    const { method, params } = request.data;
    const isNotification = request.data.id === undefined;
    if (!Object.hasOwn(methods, method)) {
      return isNotification ? undefined : errorReply(replyId, JsonRpcCodes.METHOD_NOT_FOUND, `method not found: ${method}`);
    }
    const schema = methods[method as MethodName];
    const parsed = schema.safeParse(params ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length ? ` (${issue.path.join('.')})` : '';
      return isNotification ? undefined : errorReply(replyId, JsonRpcCodes.INVALID_PARAMS, `invalid params${where}: ${issue?.message ?? ''}`);
    }
    if (inFlight >= maxInFlight) {
      return errorReply(replyId, JsonRpcCodes.INVALID_REQUEST, `too many requests in flight (at most ${maxInFlight})`);
    }
    inFlight++;
    try {
      const outcome = await handlers[method as MethodName](parsed.data as never);
      if (isNotification) {
        outcome.after?.();
        return undefined;
      }
      const reply: Reply = { jsonrpc: '2.0', id: replyId, result: outcome.result };
      if (outcome.after) {
        send(reply);
        outcome.after();
        return undefined;
      }
      return reply;
    } catch (error) {
      return isNotification ? undefined : { jsonrpc: '2.0', id: replyId, error: toRpcError(error) };
    } finally {
      inFlight--;
    }
  }

  async function onMessage(message: string | Uint8Array): Promise<void> {
    if (typeof message !== 'string') {
      send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, 'binary frames are not accepted from clients'));
      return;
    }
    if (Buffer.byteLength(message) > maxMessageBytes) {
      send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, `message larger than ${maxMessageBytes} bytes`));
      return;
    }
    if (jsonDepthExceeds(message, maxDepth)) {
      send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, `message nested deeper than ${maxDepth} levels`));
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      send(errorReply(null, JsonRpcCodes.PARSE_ERROR, 'parse error: not valid JSON'));
      return;
    }
    if (!Array.isArray(parsed)) {
      const reply = await handle(parsed);
      if (reply) send(reply);
      return;
    }
    if (parsed.length === 0) return send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, 'empty batch'));
    if (parsed.length > maxBatch) return send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, `batch larger than ${maxBatch} requests`));
    const replies = (await Promise.all(parsed.map(handle))).filter((r): r is Reply => r !== undefined);
    if (replies.length > 0) send(replies);
  }

  const shutdown = () => {
    if (!open) return;
    open = false;
    for (const follow of follows.values()) follow.stop();
    follows.clear();
    inbound?.unsubscribe();
    resolveClosed();
  };
  let inbound: Subscription | undefined;
  inbound = channel.messages$.subscribe({
    next: (message) => void onMessage(message).catch(() => undefined),
    error: shutdown,
    complete: shutdown,
  });

  return {
    closed,
    close() {
      channel.close('server closing');
      shutdown();
    },
  };
}
