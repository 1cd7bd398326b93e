import type { Observable } from 'rxjs';
import type { FileSystemBackend, FileWriteOptions, GpuProbeResult, GpuWaitResult } from './backends.js';
import type { ExecutionSpecInput, GpuGateOptions, OutputStream, StoredEvent } from './events.js';
import type { ListOptions, ListPage, StoreHealth } from './eventStore.js';
import type { ExecutionState } from './state.js';

/** `exec.start` input: what to run, plus an optional caller-chosen id for idempotent retries. */
export type ExecStartParams = ExecutionSpecInput & {
  /** Re-sending a start with an id that exists returns that execution; no second process. */
  readonly id?: string;
};

export interface ExecReadOptions {
  /** Events after this seq. Default 0. */
  readonly afterSeq?: number;
  /** At most this many events. Default 1000. */
  readonly limit?: number;
  /** Stop after the event whose output brings the page to this many bytes (at least one event comes back). Default 4 MiB. */
  readonly maxBytes?: number;
  /** If nothing is there yet and the execution is not finished, wait up to this long for an event (long-poll). Default 0. */
  readonly waitMs?: number;
}

export interface ExecReadResult {
  readonly events: readonly StoredEvent[];
  /** The execution's last seq when read; read again after the last returned event to continue. */
  readonly lastSeq: number;
  readonly finished: boolean;
}

export interface LogsOptions {
  /** Which output streams. Default `['stdout']`; a tty execution's output is on `pty`. */
  readonly streams?: readonly OutputStream[];
  /** The last N bytes (of the selected streams together). Default 2000 when no other selector is given. */
  readonly tailBytes?: number;
  /** The last N lines (of the selected streams together). */
  readonly tailLines?: number;
  /** Only output after this seq. */
  readonly afterSeq?: number;
  /** Only output before this seq (pins a tail to an end seen before: `LogsResult.lastSeq + 1`). */
  readonly beforeSeq?: number;
  /** Only output recorded at or after / before this time (epoch ms). */
  readonly since?: number;
  readonly until?: number;
  /** At most this many lines returned (the newest, unless only `afterSeq` bounds the read). Default 10000. */
  readonly maxLines?: number;
  /** A longer line comes back as its end, marked `cut`; a tail does not read further back than that. Default 64 KiB. */
  readonly maxLineBytes?: number;
}

export interface LogLine {
  readonly stream: OutputStream;
  /** Seq of the event holding the line's last byte. */
  readonly seq: number;
  /** The line without its newline, decoded as UTF-8 (invalid bytes become U+FFFD). */
  readonly line: string;
  /**
   * Present (true) when `line` is only the end of a longer line: its start was not read (a line
   * longer than the limit, 64 KiB by default, or a tail that reached its scan budget).
   */
  readonly cut?: true;
}

export interface LogsResult {
  readonly lines: readonly LogLine[];
  /** The execution's last seq when read; `exec.follow(id, lastSeq)` continues from here. */
  readonly lastSeq: number;
}

export interface CancelOptions {
  /** Time between TERM and KILL. Default 3000 ms. */
  readonly graceMs?: number;
  /** First signal. Default `SIGTERM`. */
  readonly signal?: string;
}

export interface CancelResult {
  readonly cancelled: boolean;
  /** Why nothing was cancelled (`already finished`). */
  readonly reason?: string;
  readonly state: ExecutionState;
}

export interface WriteOptions {
  /** The caller's id for this write; a write repeated with the same id is applied once. */
  readonly writeId?: string;
  /** Close stdin after this write. */
  readonly eof?: boolean;
}

/** Executions on one machine. Every method behaves the same on a local and a remote machine. */
export interface ExecApi {
  /**
   * Start an execution and resolve once it is running, has failed to start, or (with a GPU
   * gate) is queued. Fails with `BACKEND_UNAVAILABLE` when the machine has no process backend.
   */
  start(params: ExecStartParams): Promise<ExecutionState>;
  /** Fails with `EXEC_NOT_FOUND`. */
  get(id: string): Promise<ExecutionState>;
  list(options?: ListOptions): Promise<ListPage>;
  /** A page of events (long-poll with `waitMs`). */
  read(id: string, options?: ExecReadOptions): Promise<ExecReadResult>;
  /** Events after `afterSeq`, then live; completes after the terminal event. */
  follow(id: string, afterSeq?: number): Observable<StoredEvent>;
  /** Output as lines, tailed on the machine (O(tail) for `tailBytes`/`tailLines`). */
  logs(id: string, options?: LogsOptions): Promise<LogsResult>;
  write(id: string, data: Uint8Array | string, options?: WriteOptions): Promise<{ readonly bytes: number }>;
  closeStdin(id: string): Promise<void>;
  /** Send a signal (`INT`, `SIGTERM`…) to the execution's process group. */
  signal(id: string, signal: string): Promise<void>;
  /** TERM the process group, KILL after the grace, check nothing of it survives; resolves when it has ended. */
  cancel(id: string, options?: CancelOptions): Promise<CancelResult>;
  resize(id: string, cols: number, rows: number): Promise<void>;
  /** Resolves with the final state once the execution has finished. */
  wait(id: string): Promise<ExecutionState>;
}

/**
 * Files on a machine; the same operations as the filesystem backend, except that `write` also
 * takes a string (written as UTF-8), as `exec.write` does.
 */
export interface FsApi extends Omit<FileSystemBackend, 'write'> {
  /** Atomic: the file appears whole (temp file + rename) or not at all. A string is written as UTF-8. */
  write(path: string, data: Uint8Array | string, options?: FileWriteOptions): Promise<{ bytesWritten: number }>;
}

export interface GpuApi {
  probe(): Promise<GpuProbeResult>;
  waitFree(gate?: Partial<GpuGateOptions>, signal?: AbortSignal): Promise<GpuWaitResult>;
}

export interface MachineInfo {
  readonly name: string;
  /** tether's version on the machine. */
  readonly version: string;
  readonly os: string;
  readonly arch: string;
  readonly hostname: string;
  readonly home: string;
  readonly cwd: string;
  readonly pid: number;
  readonly backends: {
    readonly process: boolean;
    readonly filesystem: boolean;
    readonly gpu: boolean;
    /** Names of the process backends an execution can choose (`spec.backend`), the default first. */
    readonly processBackends?: readonly string[];
  };
}

export interface MachineHealth {
  /** False while something the machine needs fails: its event store cannot write (see `store`). */
  readonly ok: boolean;
  readonly uptimeMs: number;
  /** Executions running (or queued) now. */
  readonly active: number;
  /**
   * The event store: `{ ok: true }`, or `ok: false` with the code (`DISK_FULL`,
   * `STORE_WRITE_FAILED`), message, directory, since when (ms since the epoch) and attempts to
   * resume so far. Absent from daemons older than this field.
   */
  readonly store?: StoreHealth;
}

/** What a user addresses by name: the local machine or a remote daemon, one contract. */
export interface MachineApi {
  readonly name: string;
  readonly exec: ExecApi;
  readonly fs: FsApi;
  readonly gpu: GpuApi;
  info(): Promise<MachineInfo>;
  health(): Promise<MachineHealth>;
}
