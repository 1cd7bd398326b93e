import { z } from 'zod';

const noNul = (s: string) => !s.includes('\0');
/** A string that can be handed to the OS (no NUL byte). */
const OsString = z.string().refine(noNul, 'must not contain a NUL byte');

/** Execution ids: chosen by the caller (for idempotent retries) or generated. */
export const ExecutionId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'an id is 1-128 characters of A-Z a-z 0-9 . _ : - and starts with a letter or digit');

export const OutputStream = z.enum(['stdout', 'stderr', 'pty']);
export type OutputStream = z.infer<typeof OutputStream>;

/** Thresholds under which a GPU counts as free (the "GPU gate"). */
export const GpuGateOptions = z.object({
  /** Highest utilisation (percent) a free GPU may show. Default 10. */
  maxUtilizationPct: z.number().min(0).max(100).default(10),
  /** Most memory (MiB) a free GPU may have in use. Default 1000. */
  maxMemoryUsedMiB: z.number().min(0).default(1000),
  /** Require that no compute process runs on the GPU. Default true. */
  requireNoProcesses: z.boolean().default(true),
  /** Only consider these GPU indexes; all when absent. */
  gpuIndexes: z.array(z.number().int().min(0)).optional(),
  /** Give up after this long (ExecutionFailed with GATE_TIMEOUT). Default: wait forever. */
  timeoutMs: z.number().int().positive().optional(),
  /** How often to probe while waiting. Default 2000 ms. */
  pollMs: z.number().int().min(50).default(2000),
});
export type GpuGateOptions = z.infer<typeof GpuGateOptions>;

/** A backend name, as a ProcessBackend declares it (`process`, `slurm`). */
export const BackendName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a backend name is 1-32 characters of a-z 0-9 - and starts with a letter');

/** Options for the chosen backend (e.g. Slurm's `partition`); the backend validates them. */
export const BackendOptions = z.record(z.string().min(1).max(64), z.union([OsString.max(4096), z.number(), z.boolean(), z.array(OsString.max(4096)).max(64)]));
export type BackendOptions = z.infer<typeof BackendOptions>;

/**
 * Where a backend runs an execution, in its own terms (a Slurm job id and node list), so that
 * it can find it again after a restart. Recorded in `ExecutionQueued` / `ExecutionStarted`.
 */
export const BackendRef = z.record(z.string().min(1).max(64), z.string().max(4096));
export type BackendRef = z.infer<typeof BackendRef>;

/**
 * Who to tell when an execution has ended (any end: exited, signalled, cancelled, timed out,
 * failed to start, lost). The daemon that runs the execution delivers it, whether or not a client
 * is connected, and records the outcome (`NotificationDelivered` / `NotificationFailed`).
 */
export const NotifySpec = z
  .object({
    /** A shell command (`sh -c`) run on the machine with the summary JSON on its stdin; delivered when it exits 0. Run once. */
    command: OsString.min(1).max(64 * 1024).optional(),
    /** An http(s) URL the summary JSON is POSTed to; delivered on a 2xx answer, retried with backoff otherwise (a bounded number of times). */
    url: z
      .string()
      .max(4096)
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'an http:// or https:// URL')
      .optional(),
  })
  .refine((n) => n.command !== undefined || n.url !== undefined, { message: 'give a command or a url to notify' });
export type NotifySpec = z.infer<typeof NotifySpec>;

/**
 * What to run. Exactly one of `argv` (run as is, no shell) or `command` (a shell string run
 * by `shell -c`, `sh` unless `shell` says otherwise; a non-login shell unless `login`).
 */
export const ExecutionSpec = z
  .object({
    argv: z.array(OsString).min(1).optional(),
    command: OsString.min(1).optional(),
    /** The shell for `command`. Default `sh`. */
    shell: OsString.min(1).optional(),
    /** Run `command` in a login shell (`shell -lc`: it reads `~/.profile`, which often sets PATH, conda, CUDA). Default false. */
    login: z.boolean().optional(),
    /** Working directory; default the backend's (the daemon's) cwd. */
    cwd: OsString.min(1).optional(),
    /** Environment variables; merged onto the backend's environment unless `envMode: 'exact'`. */
    env: z.record(OsString, OsString).optional(),
    envMode: z.enum(['merge', 'exact']).default('merge'),
    /** Run in a pseudo-terminal of this size; output then arrives on the `pty` stream. */
    tty: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).optional(),
    /** Keep stdin open for `exec.write`; otherwise stdin is closed at once. */
    stdin: z.boolean().default(false),
    /** Cancel (TERM, then KILL after the grace) after this long; end_reason `timed_out`. */
    timeoutMs: z.number().int().positive().optional(),
    /** Grace between TERM and KILL for timeouts. Default 3000 ms. */
    killGraceMs: z.number().int().min(0).default(3000),
    /** Free-form labels for the caller's bookkeeping. */
    labels: z.record(z.string(), z.string()).optional(),
    /** Hold the execution in `queued` until a GPU is free. */
    gpuGate: GpuGateOptions.optional(),
    /** The process backend to run it on (`slurm`…). Default: the machine's default backend. */
    backend: BackendName.optional(),
    /** Options for that backend, validated by it. */
    backendOptions: BackendOptions.optional(),
    /** Tell someone when it has ended (see NotifySpec). */
    notify: NotifySpec.optional(),
  })
  .refine((s) => (s.argv === undefined) !== (s.command === undefined), {
    message: 'give exactly one of argv or command',
  });
export type ExecutionSpec = z.infer<typeof ExecutionSpec>;
export type ExecutionSpecInput = z.input<typeof ExecutionSpec>;

export const SignalReason = z.enum(['user', 'timeout', 'cancel']);
export type SignalReason = z.infer<typeof SignalReason>;

const Bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected bytes (a Uint8Array)');

export const ExecutionRequested = z.object({ type: z.literal('ExecutionRequested'), data: z.object({ spec: ExecutionSpec }) });
/**
 * A backend that schedules (a batch system) accepted the execution but has not started it yet:
 * why it waits (the scheduler's reason, e.g. `Resources`), and where to find it (`ref`).
 * Appended again when the reason changes.
 */
export const ExecutionQueued = z.object({
  type: z.literal('ExecutionQueued'),
  data: z.object({ reason: z.string().max(4096).nullable(), ref: BackendRef.optional() }),
});
export const ExecutionStarted = z.object({
  type: z.literal('ExecutionStarted'),
  data: z.object({
    /** null where the process is not on this machine (a batch job on a cluster node). */
    pid: z.number().int().nullable(),
    pgid: z.number().int().nullable(),
    tty: z.boolean(),
    /** The backend's own handle (a job id, nodes), merged onto the one from ExecutionQueued. */
    ref: BackendRef.optional(),
  }),
});
export const OutputProduced = z.object({ type: z.literal('OutputProduced'), data: z.object({ stream: OutputStream, data: Bytes }) });
export const InputWritten = z.object({
  type: z.literal('InputWritten'),
  data: z.object({
    bytes: z.number().int().min(0),
    /** The caller's id for this write; a write repeated with the same id is accepted once. */
    writeId: z.string().max(128).optional(),
    /** stdin was closed after this write. */
    eof: z.boolean().default(false),
  }),
});
export const SignalSent = z.object({
  type: z.literal('SignalSent'),
  data: z.object({ signal: z.string(), reason: SignalReason }),
});
export const OutputTruncated = z.object({
  type: z.literal('OutputTruncated'),
  data: z.object({
    /** Bytes dropped since the previous OutputTruncated of this execution. */
    droppedBytes: z.number().int().min(0),
    /** The per-execution output cap in force. */
    limitBytes: z.number().int().min(0),
  }),
});
export const ExecutionExited = z.object({
  type: z.literal('ExecutionExited'),
  data: z.object({
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    /** Processes of the execution that could not be cleaned up (e.g. left their process group). */
    survivors: z.array(z.number().int()).default([]),
    /** The backend itself stopped it for this reason (a scheduler's time limit or cancel). */
    stopReason: z.enum(['cancel', 'timeout']).optional(),
  }),
});
export const ExecutionFailed = z.object({
  type: z.literal('ExecutionFailed'),
  data: z.object({ code: z.string(), message: z.string() }),
});
export const ExecutionLost = z.object({ type: z.literal('ExecutionLost'), data: z.object({ reason: z.string() }) });

export const NotificationChannel = z.enum(['command', 'url']);
export type NotificationChannel = z.infer<typeof NotificationChannel>;
/** A completion notification reached its target (after the terminal event). */
export const NotificationDelivered = z.object({
  type: z.literal('NotificationDelivered'),
  data: z.object({
    channel: NotificationChannel,
    /** Tries it took (1 for a command). */
    attempts: z.number().int().min(1),
    /** What answered: `exit 0`, `HTTP 204`. */
    detail: z.string().max(1000),
  }),
});
/** A completion notification could not be delivered (after its last try); the execution is unaffected. */
export const NotificationFailed = z.object({
  type: z.literal('NotificationFailed'),
  data: z.object({
    channel: NotificationChannel,
    attempts: z.number().int().min(1),
    /** Why the last try failed: `exit 3`, `HTTP 500`, `ECONNREFUSED`… */
    error: z.string().max(1000),
  }),
});

export const ExecutionEvent = z.discriminatedUnion('type', [
  ExecutionRequested,
  ExecutionQueued,
  ExecutionStarted,
  OutputProduced,
  InputWritten,
  SignalSent,
  OutputTruncated,
  ExecutionExited,
  ExecutionFailed,
  ExecutionLost,
  NotificationDelivered,
  NotificationFailed,
]);
export type ExecutionEvent = Readonly<z.infer<typeof ExecutionEvent>>;
export type ExecutionEventType = ExecutionEvent['type'];
export type EventOf<T extends ExecutionEventType> = Extract<ExecutionEvent, { type: T }>;

/** An event as the store keeps it: `seq` is contiguous from 1 per stream, `ts` is epoch ms. */
export type StoredEvent<E extends ExecutionEvent = ExecutionEvent> = E & { readonly seq: number; readonly ts: number };

export const TERMINAL_EVENT_TYPES: ReadonlySet<ExecutionEventType> = new Set(['ExecutionExited', 'ExecutionFailed', 'ExecutionLost']);

/** Terminal events end an execution; nothing follows them in its stream. */
export function isTerminal(event: ExecutionEvent): boolean {
  return TERMINAL_EVENT_TYPES.has(event.type);
}

/** Records about an ended execution: the only events that may follow its terminal event. */
export const AFTER_TERMINAL_EVENT_TYPES: ReadonlySet<ExecutionEventType> = new Set(['NotificationDelivered', 'NotificationFailed']);

/**
 * Events that must be on disk before an append resolves (the store writes them with sync):
 * the request, the queueing, the start, the terminal events and the notification records. Output and input are group-committed.
 */
export function needsSync(event: ExecutionEvent): boolean {
  return (
    event.type === 'ExecutionRequested' ||
    event.type === 'ExecutionQueued' ||
    event.type === 'ExecutionStarted' ||
    isTerminal(event) ||
    AFTER_TERMINAL_EVENT_TYPES.has(event.type)
  );
}
