import type { InjectionToken } from 'tsyringe';
import type { Observable } from 'rxjs';
import type { BackendOptions, BackendRef, GpuGateOptions, OutputStream } from './events.js';

// ---------------------------------------------------------------------------------------------
// Process backend
// ---------------------------------------------------------------------------------------------

/** What the process backend is asked to start; already validated and resolved by the machine. */
export interface ProcessSpec {
  /** Execution id; backends may tag the process with it to find escaped descendants. */
  readonly id: string;
  /** The program and its arguments (a shell command arrives as `[shell, '-c', command]`). */
  readonly argv: readonly [string, ...string[]];
  readonly cwd?: string;
  /** The environment; merged onto the backend's own unless `envMode` is `exact`. */
  readonly env?: Readonly<Record<string, string>>;
  readonly envMode: 'merge' | 'exact';
  /** Run in a pseudo-terminal; output then arrives on the `pty` stream only. */
  readonly tty?: { readonly cols: number; readonly rows: number };
  /** Keep stdin open for writes; otherwise it is closed (EOF) at once. */
  readonly stdin: boolean;
  /**
   * The execution's timeout. The machine enforces it itself (TERM, grace, KILL from when the
   * process started running); a backend with its own limits (a batch system) may pass it on.
   */
  readonly timeoutMs?: number;
  readonly killGraceMs?: number;
  /** The spec's `backendOptions`, for the backend to validate (reject unknown or bad ones with `INVALID_ARGUMENT`). */
  readonly backendOptions?: BackendOptions;
  /** The spec's GPU gate, passed only to a backend that `schedulesGpus` (it holds the execution in its own queue). */
  readonly gpuGate?: GpuGateOptions;
}

export interface OutputChunk {
  readonly stream: OutputStream;
  /** Raw bytes as read; never re-encoded. */
  readonly data: Uint8Array;
}

export interface ProcessExit {
  readonly exitCode: number | null;
  /** Signal name (`SIGTERM`) if a signal ended it. */
  readonly signal: string | null;
  /** The backend stopped it on its own (a scheduler's time limit, an administrator's cancel). */
  readonly stopReason?: 'cancel' | 'timeout';
  /** Set when the backend lost it (a node failed, a job was preempted): recorded as `ExecutionLost` with this reason. */
  readonly lost?: string;
  /**
   * Set when the backend learned only after submitting that the program could not start (a batch
   * job whose command was not found on the node): recorded as `ExecutionFailed`.
   */
  readonly failed?: { readonly code: string; readonly message: string };
  /** Pids of the execution the backend found still alive after it ended (recorded in `ExecutionExited`). */
  readonly survivors?: number[];
}

/**
 * While a scheduling backend holds a submitted execution before it runs: why it waits and
 * the backend's handle for it.
 */
export interface QueueUpdate {
  readonly reason: string | null;
  readonly ref?: BackendRef;
}

/**
 * A started process, leader of its own process group — or, for a scheduling backend, a
 * submitted job: then `ref` names it, `queue$` reports why it waits and `running` resolves
 * once it runs (output, the timeout and `survivors` only matter from then on).
 */
export interface RunningProcess {
  /** null where the process does not run on this machine (a batch job on a cluster node). */
  readonly pid: number | null;
  /** The process group (equal to `pid` where the platform has groups), or null. */
  readonly pgid: number | null;
  /**
   * Every output chunk in order; completes after the process has exited and its output is
   * drained (or after a short drain limit if a descendant keeps the pipe open).
   */
  readonly output$: Observable<OutputChunk>;
  /** Resolves when the process has exited (it may resolve before `output$` completes). */
  readonly exit: Promise<ProcessExit>;
  /** Stop reading output until `resumeOutput` (backpressure); the OS pipe then fills and blocks the writer. */
  pauseOutput(): void;
  resumeOutput(): void;
  write(data: Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  /** Send a signal (`SIGTERM`, `SIGKILL`…) to the whole process group. */
  signal(signal: string): void;
  resize(cols: number, rows: number): void;
  /**
   * Pids of processes that belong to this execution and are still alive: members of its
   * process group, plus descendants that left the group if the backend can find them.
   */
  survivors(): Promise<number[]>;
  /** Send a signal to the given pids (the survivors left after the group is gone). */
  signalPids(pids: readonly number[], signal: string): void;
  /** The backend's handle (a job id), recorded durably before `spawn`'s caller is answered. */
  readonly ref?: BackendRef;
  /** Queue updates while it waits to run (each is recorded as `ExecutionQueued`); completes when it runs or ends. */
  readonly queue$?: Observable<QueueUpdate>;
  /**
   * For a backend that queues: resolves when it runs, with more of its handle (the nodes);
   * never resolves if it ends without running (then `exit` resolves). Absent: running at once.
   */
  readonly running?: Promise<BackendRef | undefined>;
  /** True when the backend enforces `spec.timeoutMs` itself (then the machine sets no timer of its own). */
  readonly enforcesTimeout?: boolean;
}

/** An execution a previous run of the machine left running or queued, as recorded. */
export interface ReattachRequest {
  readonly id: string;
  /** The pid recorded at start, null if none was (never started, or it runs elsewhere). */
  readonly pid: number | null;
  /** The backend's handle as recorded (`ExecutionQueued` / `ExecutionStarted`), if any. */
  readonly ref?: BackendRef;
  readonly spec: ProcessSpec;
  /** Output bytes recorded in all (every stream). */
  readonly outputOffset: number;
  /** Output bytes recorded per stream: output continues from there. */
  readonly resume: { readonly stdout: number; readonly stderr: number };
}

/** What a backend made of one ReattachRequest: the process, continued, or why it is lost. */
export type ReattachResult = { readonly process: RunningProcess } | { readonly lost: string };

export interface ProcessBackend {
  /**
   * The name an execution's `spec.backend` selects it by. Default `process`. A machine has one
   * default backend; the others are chosen per execution.
   */
  readonly name?: string;
  /**
   * The backend queues executions until the GPUs they ask for are free (a cluster scheduler): a
   * spec's `gpuGate` is then passed on to it in `ProcessSpec.gpuGate` instead of the machine
   * waiting for a free GPU on its own GPU probe first.
   */
  readonly schedulesGpus?: boolean;
  /**
   * Start a process. Rejects with a TetherError: `CWD_NOT_FOUND`, or `SPAWN_FAILED` with
   * `details.errno` (`ENOENT`, `EACCES`, `E2BIG`…).
   */
  spawn(spec: ProcessSpec): Promise<RunningProcess>;
  /**
   * Find the executions a previous run of the machine started (after a daemon restart) and
   * continue them: called once at start with every interrupted execution of this backend.
   * Output is produced from each request's `resume` on. An id missing from the answer, or
   * answered `{ lost }`, is recorded lost. Backends without it have theirs recorded lost.
   */
  reattach?(requests: readonly ReattachRequest[]): Promise<Map<string, ReattachResult>>;
  /** Release what the backend holds (pollers, connections) when the machine closes. */
  close?(): void | Promise<void>;
}
export const ProcessBackend: InjectionToken<ProcessBackend> = Symbol.for('tether.ProcessBackend');

// ---------------------------------------------------------------------------------------------
// Filesystem backend
// ---------------------------------------------------------------------------------------------

export type FileType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'block-device' | 'char-device' | 'unknown';

export interface FileStat {
  /** The path as given by the caller. */
  readonly path: string;
  readonly name: string;
  readonly type: FileType;
  readonly size: number;
  /** Permission bits, e.g. 0o644. */
  readonly mode: number;
  /** Epoch ms. */
  readonly mtimeMs: number;
  /** For symlinks: where it points (not followed). */
  readonly linkTarget?: string;
}

export interface FileReadOptions {
  /** Byte offset to start at. Default 0. */
  readonly offset?: number;
  /**
   * At most this many bytes. Default: to the end, but never more than the backend's per-call
   * limit (then `eof` is false: read on from `offset + data.byteLength`). A `length` above the
   * limit fails with `TOO_LARGE`.
   */
  readonly length?: number;
}

export interface FileReadResult {
  readonly data: Uint8Array;
  /** The file's size when read. */
  readonly size: number;
  /** True when the read reached the end of the file. */
  readonly eof: boolean;
}

export interface FileWriteOptions {
  /** Permission bits of a new file. Default 0o644 (the existing file's mode when replacing). */
  readonly mode?: number;
  /** Create missing parent directories. Default false. */
  readonly mkdir?: boolean;
  /** Replace an existing file. Default true. */
  readonly overwrite?: boolean;
}

/**
 * Files on the machine, confined to the backend's roots: every path that resolves (after
 * following symlinks) outside them fails with `PATH_OUTSIDE_ROOT`.
 */
export interface FileSystemBackend {
  stat(path: string): Promise<FileStat>;
  list(path: string): Promise<FileStat[]>;
  read(path: string, options?: FileReadOptions): Promise<FileReadResult>;
  /** Atomic: the file appears whole (temp file + rename) or not at all. */
  write(path: string, data: Uint8Array, options?: FileWriteOptions): Promise<{ bytesWritten: number }>;
  /**
   * Chunked, atomic upload for files larger than one message: `beginWrite` returns an upload
   * id, `writeChunk` appends at `offset` (the bytes received so far; a chunk repeated at an
   * offset already received is a no-op, so a retry is safe), `commitWrite` renames into place,
   * `abortWrite` discards. Unknown or expired upload ids fail with `INVALID_ARGUMENT`.
   */
  beginWrite(path: string, options?: FileWriteOptions): Promise<{ uploadId: string }>;
  writeChunk(uploadId: string, offset: number, data: Uint8Array): Promise<{ received: number }>;
  commitWrite(uploadId: string): Promise<{ bytesWritten: number }>;
  abortWrite(uploadId: string): Promise<void>;
  mkdir(path: string, options?: { readonly recursive?: boolean; readonly mode?: number }): Promise<void>;
  /** Removes a file, an empty directory, or (with `recursive`) a tree; a symlink itself, never its target. */
  remove(path: string, options?: { readonly recursive?: boolean }): Promise<void>;
  /** Renames within the roots. `overwrite` defaults to false (`PATH_EXISTS`). */
  move(from: string, to: string, options?: { readonly overwrite?: boolean }): Promise<void>;
  /**
   * Creates a symbolic link at `path` whose target is `target`, stored as given (relative
   * targets are relative to the link's directory). The link must not lead outside the roots
   * (`PATH_OUTSIDE_ROOT`); an entry already at `path` fails with `PATH_EXISTS`. Optional: a
   * backend without it cannot receive symlinks (sync then skips them).
   */
  symlink?(target: string, path: string): Promise<void>;
}
export const FileSystemBackend: InjectionToken<FileSystemBackend> = Symbol.for('tether.FileSystemBackend');

// ---------------------------------------------------------------------------------------------
// GPU probe
// ---------------------------------------------------------------------------------------------

export interface GpuInfo {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  /** null when the driver does not report it (`[N/A]`, `[Not Supported]`); never made up. */
  readonly memoryUsedMiB: number | null;
  readonly memoryTotalMiB: number | null;
  readonly utilizationPct: number | null;
  readonly temperatureC: number | null;
  /** On a cluster: the node that has it (a Slurm node name). Absent for this machine's own GPUs. */
  readonly node?: string;
  /** On a cluster: the partitions of its node. */
  readonly partitions?: readonly string[];
  /** On a cluster: the scheduler has given it to a job (then it is not free). */
  readonly allocated?: boolean;
}

export interface GpuProcess {
  readonly pid: number;
  readonly gpuUuid: string;
  readonly usedMemoryMiB: number | null;
}

export interface GpuProbeResult {
  readonly available: boolean;
  /** Why `available` is false (no nvidia-smi, driver not loaded, timed out…). */
  readonly reason?: string;
  readonly gpus: readonly GpuInfo[];
  readonly processes: readonly GpuProcess[];
  /** Epoch ms of the probe that produced this answer (older than now when served from cache). */
  readonly probedAt: number;
  /** Parts of the tool's output that could not be understood and were left out. */
  readonly warnings?: readonly string[];
}

export interface GpuWaitResult {
  readonly waitedMs: number;
  /** The GPUs that were free when the gate opened. */
  readonly gpus: readonly GpuInfo[];
}

export interface GpuProbe {
  /** Never throws for a missing or broken GPU stack: answers `available: false` with a reason. */
  probe(): Promise<GpuProbeResult>;
  /**
   * Resolve once a GPU is free by the gate's thresholds. Rejects with `GATE_TIMEOUT` after
   * `timeoutMs`, or `ABORTED` when `signal` aborts.
   */
  waitFree(gate: GpuGateOptions, signal?: AbortSignal): Promise<GpuWaitResult>;
}
export const GpuProbe: InjectionToken<GpuProbe> = Symbol.for('tether.GpuProbe');
