import type { Subscription } from 'rxjs';
import { TetherError } from '../errors.js';
import { isTerminal, type StoredEvent } from '../events.js';
import type { MachineApi } from '../machine.js';
import type { Channel } from '../transport.js';
import { VERSION } from '../version.js';
import { JsonRpcCodes, JsonRpcRequest, jsonDepthExceeds, toRpcError, type JsonRpcErrorObject } from './jsonRpc.js';
import { NOTIFICATIONS, PROTOCOL_VERSION, methods, type MethodName } from './methods.js';
import { SendBudget, Slots } from './sendBudget.js';
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
  /**
   * Most bytes one connection may have on their way to its peer: unsent in the channel plus
   * reserved for replies and follow frames being built. At the limit the connection's follows
   * wait, its large replies wait before they are built, and its requests are no longer read
   * (the channel is paused) until half of it has drained. Default 8 MiB.
   */
  readonly maxUnsentBytes?: number;
  /** Largest page of output an `exec/read` reply carries (a larger `maxBytes` is cut to it). Default 4 MiB. */
  readonly maxReadBytes?: number;
  /**
   * Told the first time the connection backs up (its peer does not read as fast as it asks) and
   * its requests stop being read, for the daemon's log.
   */
  readonly onBackedUp?: (info: { readonly unsentBytes: number; readonly limit: number }) => void;
}

export interface RpcSession {
  /** Resolves when the channel has closed and every follow is released. */
  readonly closed: Promise<void>;
  close(): void;
}

/** A follow's frame carries at most this many events or bytes of output. */
const FRAME_MAX_EVENTS = 512;
const FRAME_MAX_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;
/** What a frame of a follow may take beyond its output: the JSON header of its events. */
const FRAME_RESERVE = FRAME_MAX_BYTES + FRAME_MAX_EVENTS * 160 + 64 * 1024;
/** What an `exec/list` reply may take: a page is cut at about 4 MiB, plus the item that passes it. */
const LIST_RESERVE = 6 * MiB;
/** How many store pages the follows of one connection read at once (one follow reads one at a time). */
const FOLLOW_PAGES_AT_ONCE = 2;

type Reply = { jsonrpc: '2.0'; id: string | number | null; result?: unknown; error?: JsonRpcErrorObject };
interface Outcome {
  readonly result: unknown;
  /** Runs after the reply was sent (a follow starts streaming only once its id is known to the client). */
  readonly after?: () => void;
}
/** A request that passed validation, before it runs. */
interface Call {
  readonly id: Reply['id'];
  readonly method: MethodName;
  readonly params: never;
  readonly isNotification: boolean;
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
  const maxUnsent = options.maxUnsentBytes ?? 8 * MiB;
  const maxReadBytes = options.maxReadBytes ?? 4 * MiB;
  const budget = new SendBudget(channel, maxUnsent);
  const pageSlots = new Slots(FOLLOW_PAGES_AT_ONCE);

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
    if (budget.full) pauseReading();
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
    'exec/read': async ({ id, maxBytes, waitMs: _wait, ...rest }: { id: string; maxBytes?: number; waitMs?: number }) => {
      // The long-poll (if any) has already waited, before the reply's bytes were reserved.
      const page = await machine.exec.read(id, { ...rest, maxBytes: Math.min(maxBytes ?? maxReadBytes, maxReadBytes) });
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

  /**
   * What a call's reply may take, reserved in the connection's budget before the call runs (0 for
   * replies that are small whatever the call: they are bounded by the paused reading instead).
   */
  function replyBytes(call: Call): number {
    const p = call.params as Record<string, number | undefined>;
    switch (call.method) {
      case 'exec/read':
        return Math.ceil((Math.min(p['maxBytes'] ?? maxReadBytes, maxReadBytes) * 4) / 3) + (p['limit'] ?? 1000) * 160 + 64 * 1024;
      case 'exec/list':
        return LIST_RESERVE;
      case 'fs/read':
        return Math.ceil(((p['length'] ?? 16 * MiB) * 4) / 3) + 4096;
      case 'exec/logs':
        return maxUnsent; // bounded by its own line and scan limits: it goes out alone
      default:
        return 0;
    }
  }

  /** Streams a follow: pages from the store while it catches up, then live; waits while the connection is backed up. */
  function startFollow(subscriptionId: string, execId: string, afterSeq: number): void {
    let sent = afterSeq;
    let terminalSent = false;
    let live: Subscription | undefined;
    let stopped = false;
    const stop = () => {
      stopped = true;
      live?.unsubscribe();
      live = undefined;
    };
    follows.set(subscriptionId, { stop });
    const end = (error?: unknown) => {
      if (stopped) return;
      stop();
      follows.delete(subscriptionId);
      const params = error === undefined ? { subscription: subscriptionId } : { subscription: subscriptionId, error: toRpcError(error) };
      send({ jsonrpc: '2.0', method: NOTIFICATIONS.followEnd, params });
    };
    const sendEvents = (events: readonly StoredEvent[]) => {
      send(encodeEventsFrame(subscriptionId, events));
      const last = events[events.length - 1]!;
      sent = last.seq;
      if (isTerminal(last)) terminalSent = true;
    };

    // Reads the stored events page by page, each page's frame within the budget, until the
    // follow is at the end of what is stored; then goes live.
    const catchUp = async (): Promise<void> => {
      try {
        for (;;) {
          if (stopped) return;
          if (terminalSent) return end();
          const slot = await pageSlots.acquire();
          let release: () => void = slot;
          let atEnd: boolean;
          try {
            const reserved = await budget.reserve(FRAME_RESERVE);
            release = () => {
              reserved();
              slot();
            };
            if (stopped) return;
            const page = await machine.exec.read(execId, { afterSeq: sent, limit: FRAME_MAX_EVENTS, maxBytes: FRAME_MAX_BYTES });
            if (stopped) return;
            const terminal = page.events.findIndex(isTerminal);
            const events = terminal >= 0 ? page.events.slice(0, terminal + 1) : page.events;
            if (events.length > 0) sendEvents(events);
            atEnd = events.length === 0 || sent >= page.lastSeq;
          } finally {
            release();
          }
          if (terminalSent) return end();
          if (atEnd) return goLive();
        }
      } catch (error) {
        end(error);
      }
    };

    // Live events leave as they come, those that arrive together in one frame. Once the
    // connection is backed up the live subscription is dropped (nothing is held for the peer)
    // and the follow catches up from the store when it has drained.
    const goLive = () => {
      if (stopped) return;
      let leaving = false;
      let subscription: Subscription | undefined;
      let batch: StoredEvent[] = [];
      let batchBytes = 0;
      const leave = () => {
        leaving = true;
        batch = [];
        subscription?.unsubscribe(); // undefined during a synchronous replay: unsubscribed below
        live = undefined;
        budget.whenDrained(() => void catchUp());
      };
      const flush = () => {
        if (leaving || batch.length === 0) return;
        if (budget.full) return leave();
        const events = batch;
        batch = [];
        batchBytes = 0;
        sendEvents(events);
        if (budget.full && !terminalSent) leave();
      };
      subscription = machine.exec.follow(execId, sent).subscribe({
        next: (event: StoredEvent) => {
          if (leaving || stopped) return;
          if (batch.length === 0) queueMicrotask(flush);
          batch.push(event);
          batchBytes += event.type === 'OutputProduced' ? event.data.data.byteLength : 64;
          if (batch.length >= FRAME_MAX_EVENTS || batchBytes >= FRAME_MAX_BYTES) flush();
        },
        error: (error: unknown) => {
          flush();
          if (!leaving) end(error);
        },
        complete: () => {
          flush();
          if (!leaving || terminalSent) end();
        },
      });
      if (leaving) subscription.unsubscribe();
      else live = subscription;
    };
    void catchUp();
  }

  /** Validates one request: a call to run, or the error reply (undefined for a bad notification). */
  function validate(message: unknown): Call | Reply | undefined {
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
    return { id: replyId, method: method as MethodName, params: parsed.data as never, isNotification };
  }

  /** A long-poll waits before its reply's bytes are reserved: a wait costs the budget nothing. */
  async function waitBeforeReply(call: Call): Promise<void> {
    const p = call.params as { id: string; afterSeq?: number; waitMs?: number };
    if (call.method === 'exec/read' && p.waitMs) await machine.exec.read(p.id, { afterSeq: p.afterSeq, limit: 1, maxBytes: 1, waitMs: p.waitMs });
  }

  async function run(call: Call): Promise<Reply | undefined> {
    try {
      const outcome = await handlers[call.method](call.params);
      if (call.isNotification) {
        outcome.after?.();
        return undefined;
      }
      const reply: Reply = { jsonrpc: '2.0', id: call.id, result: outcome.result };
      if (outcome.after) {
        send(reply);
        outcome.after();
        return undefined;
      }
      return reply;
    } catch (error) {
      return call.isNotification ? undefined : { jsonrpc: '2.0', id: call.id, error: toRpcError(error) };
    }
  }

  /**
   * Runs the requests of one message (one request, or a batch) and sends the reply. The replies'
   * bytes are reserved together before any of them runs and released once they are sent; a
   * batch whose replies could not fit in the connection's budget gets TOO_LARGE for the rest.
   */
  async function handleAll(items: readonly unknown[], asBatch: boolean): Promise<void> {
    const replies: Array<Reply | undefined> = new Array(items.length);
    const calls: Array<{ index: number; call: Call }> = [];
    let reserve = 0;
    items.forEach((item, index) => {
      const checked = validate(item);
      if (checked === undefined || 'jsonrpc' in checked) return void (replies[index] = checked);
      if (inFlight + calls.length >= maxInFlight) {
        return void (replies[index] = errorReply(checked.id, JsonRpcCodes.INVALID_REQUEST, `too many requests in flight (at most ${maxInFlight})`));
      }
      const bytes = replyBytes(checked);
      if (asBatch && bytes > 0 && reserve + bytes > maxUnsent) {
        const error = new TetherError('TOO_LARGE', `the replies of this batch could pass the connection's limit of ${maxUnsent} unsent bytes: send this request on its own`, {
          limit: maxUnsent,
        });
        return void (replies[index] = checked.isNotification ? undefined : { jsonrpc: '2.0', id: checked.id, error: toRpcError(error) });
      }
      reserve += bytes;
      calls.push({ index, call: checked });
    });
    inFlight += calls.length;
    let release: (() => void) | undefined;
    try {
      await Promise.all(calls.map(({ call }) => waitBeforeReply(call).catch(() => undefined)));
      if (reserve > 0) release = await budget.reserve(reserve);
      const results = await Promise.all(calls.map(({ call }) => run(call)));
      calls.forEach(({ index }, i) => (replies[index] = results[i]));
    } catch {
      return; // the connection closed while the replies waited for room
    } finally {
      inFlight -= calls.length;
    }
    try {
      const out = replies.filter((r): r is Reply => r !== undefined);
      if (!asBatch) {
        if (out[0]) send(out[0]);
      } else if (out.length > 0) send(out);
    } finally {
      release?.();
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
    if (!Array.isArray(parsed)) return handleAll([parsed], false);
    if (parsed.length === 0) return send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, 'empty batch'));
    if (parsed.length > maxBatch) return send(errorReply(null, JsonRpcCodes.INVALID_REQUEST, `batch larger than ${maxBatch} requests`));
    return handleAll(parsed, true);
  }

  // Reading requests stops while the connection is backed up, so a peer that sends requests and
  // never reads the replies is held back by the OS rather than by this process's memory. The few
  // messages that arrive after the pause wait here; a channel that cannot pause and keeps sending
  // past `maxMessageBytes` of them is closed.
  let reading = true;
  const held: string[] = [];
  let heldBytes = 0;
  let backedUp = false;
  function pauseReading(): void {
    if (!reading || !open) return;
    reading = false;
    channel.pause?.();
    if (!backedUp) {
      backedUp = true;
      options.onBackedUp?.({ unsentBytes: budget.unsent, limit: maxUnsent });
    }
    budget.whenDrained(resumeReading);
  }
  function resumeReading(): void {
    if (!open) return;
    reading = true;
    while (held.length > 0 && reading) {
      const message = held.shift()!;
      heldBytes -= message.length;
      dispatch(message);
    }
    if (reading) channel.resume?.();
  }
  function dispatch(message: string | Uint8Array): void {
    void onMessage(message).catch(() => undefined);
  }
  function receive(message: string | Uint8Array): void {
    // Binary frames and oversized messages are refused in a few bytes: nothing to keep them for.
    if (reading || typeof message !== 'string' || message.length > maxMessageBytes) return dispatch(message);
    held.push(message);
    heldBytes += message.length;
    if (heldBytes > 2 * maxMessageBytes) {
      channel.close('the peer keeps sending requests but does not read the replies');
      shutdown();
    }
  }

  const shutdown = () => {
    if (!open) return;
    open = false;
    for (const follow of follows.values()) follow.stop();
    follows.clear();
    budget.close();
    pageSlots.close();
    held.length = 0;
    inbound?.unsubscribe();
    resolveClosed();
  };
  let inbound: Subscription | undefined;
  inbound = channel.messages$.subscribe({
    next: receive,
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
