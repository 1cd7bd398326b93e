import type { BackendRef, ExecutionSpec, NotificationChannel, OutputStream, SignalReason, StoredEvent } from './events.js';

export type ExecutionStatus = 'queued' | 'running' | 'finished';
export type EndReason = 'exited' | 'signaled' | 'cancelled' | 'timed_out' | 'failed_to_start' | 'lost';

/** The outcome of one completion notification (see `NotifySpec`). */
export interface NotificationRecord {
  readonly channel: NotificationChannel;
  readonly delivered: boolean;
  readonly attempts: number;
  /** When it was delivered or given up (epoch ms). */
  readonly at: number;
  /** `exit 0`, `HTTP 204` when delivered; why the last try failed otherwise. */
  readonly detail: string;
}

/** The state of one execution: a fold of its events, nothing more. */
export interface ExecutionState {
  readonly id: string;
  readonly status: ExecutionStatus;
  /** Set once `status` is `finished`. */
  readonly endReason: EndReason | null;
  readonly exitCode: number | null;
  /** The signal that ended the process (`SIGKILL`…), if one did. */
  readonly signal: string | null;
  readonly pid: number | null;
  readonly pgid: number | null;
  readonly spec: ExecutionSpec | null;
  /** While a scheduling backend holds it queued: the scheduler's reason (`Resources`…). */
  readonly queueReason: string | null;
  /** The backend's handle for it (a Slurm job id, node list), or null. */
  readonly backendRef: BackendRef | null;
  /** Epoch ms. */
  readonly requestedAt: number | null;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  /** Output bytes recorded per stream (after any truncation). */
  readonly bytes: Readonly<Record<OutputStream, number>>;
  /** Output bytes dropped by the retention cap. */
  readonly truncatedBytes: number;
  readonly stdinBytes: number;
  readonly stdinClosed: boolean;
  /** Why the last cancel/timeout signal was sent; decides `cancelled` vs `timed_out`. */
  readonly stopReason: Exclude<SignalReason, 'user'> | null;
  /** For `failed_to_start`: the errno or tether code, and the message. */
  readonly error: { readonly code: string; readonly message: string } | null;
  /** Processes that outlived the execution and could not be cleaned up. */
  readonly survivors: readonly number[];
  /** Completion notifications delivered or given up so far (one per channel of `spec.notify`). */
  readonly notifications: readonly NotificationRecord[];
  readonly lastSeq: number;
}

export function initialState(id: string): ExecutionState {
  return {
    id,
    status: 'queued',
    endReason: null,
    exitCode: null,
    signal: null,
    pid: null,
    pgid: null,
    spec: null,
    queueReason: null,
    backendRef: null,
    requestedAt: null,
    startedAt: null,
    finishedAt: null,
    bytes: { stdout: 0, stderr: 0, pty: 0 },
    truncatedBytes: 0,
    stdinBytes: 0,
    stdinClosed: false,
    stopReason: null,
    error: null,
    survivors: [],
    notifications: [],
    lastSeq: 0,
  };
}

/** Folds one stored event into the state. Pure; never throws on a known event. */
export function evolve(state: ExecutionState, event: StoredEvent): ExecutionState {
  const next = { ...state, lastSeq: event.seq };
  switch (event.type) {
    case 'ExecutionRequested':
      return { ...next, spec: event.data.spec, requestedAt: event.ts, status: 'queued' };
    case 'ExecutionQueued':
      return { ...next, status: 'queued', queueReason: event.data.reason, backendRef: mergeRef(state.backendRef, event.data.ref) };
    case 'ExecutionStarted':
      return {
        ...next,
        status: 'running',
        pid: event.data.pid,
        pgid: event.data.pgid,
        startedAt: event.ts,
        queueReason: null,
        backendRef: mergeRef(state.backendRef, event.data.ref),
      };
    case 'OutputProduced': {
      const stream = event.data.stream;
      return { ...next, bytes: { ...state.bytes, [stream]: state.bytes[stream] + event.data.data.byteLength } };
    }
    case 'InputWritten':
      return { ...next, stdinBytes: state.stdinBytes + event.data.bytes, stdinClosed: state.stdinClosed || event.data.eof };
    case 'SignalSent':
      return event.data.reason === 'user' ? next : { ...next, stopReason: state.stopReason ?? event.data.reason };
    case 'OutputTruncated':
      return { ...next, truncatedBytes: state.truncatedBytes + event.data.droppedBytes };
    case 'ExecutionExited': {
      const { exitCode, signal, survivors } = event.data;
      const stopReason = state.stopReason ?? event.data.stopReason ?? null;
      const endReason: EndReason = stopReason === 'cancel' ? 'cancelled' : stopReason === 'timeout' ? 'timed_out' : signal ? 'signaled' : 'exited';
      return { ...next, status: 'finished', endReason, exitCode, signal, survivors, stopReason, queueReason: null, finishedAt: event.ts };
    }
    case 'ExecutionFailed':
      // CANCELLED: stopped before it started (e.g. while queued behind the GPU gate).
      return {
        ...next,
        status: 'finished',
        endReason: event.data.code === 'CANCELLED' ? 'cancelled' : 'failed_to_start',
        error: event.data,
        queueReason: null,
        finishedAt: event.ts,
      };
    case 'NotificationDelivered':
    case 'NotificationFailed': {
      const delivered = event.type === 'NotificationDelivered';
      const record: NotificationRecord = {
        channel: event.data.channel,
        delivered,
        attempts: event.data.attempts,
        at: event.ts,
        detail: event.type === 'NotificationDelivered' ? event.data.detail : event.data.error,
      };
      // A snapshot written before notifications existed has no list.
      return { ...next, notifications: [...(state.notifications ?? []), record] };
    }
    case 'ExecutionLost':
      return {
        ...next,
        status: 'finished',
        endReason: 'lost',
        error: { code: 'LOST', message: event.data.reason },
        queueReason: null,
        finishedAt: event.ts,
      };
  }
}

function mergeRef(current: BackendRef | null, more: BackendRef | undefined): BackendRef | null {
  return more === undefined ? current : { ...(current ?? {}), ...more };
}

/** The state after all of `events`, in order. */
export function foldEvents(id: string, events: Iterable<StoredEvent>, from: ExecutionState = initialState(id)): ExecutionState {
  let state = from;
  for (const event of events) state = evolve(state, event);
  return state;
}

/** Milliseconds from start (or request) to finish, or to `now` while running. */
export function durationMs(state: ExecutionState, now: number = Date.now()): number {
  const start = state.startedAt ?? state.requestedAt;
  if (start === null) return 0;
  return Math.max(0, (state.finishedAt ?? now) - start);
}
