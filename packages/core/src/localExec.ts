import { EMPTY, firstValueFrom, from, lastValueFrom, switchMap, timeout, type Observable } from 'rxjs';
import type { GpuProbe, ProcessBackend, ProcessSpec, ReattachRequest, ReattachResult, RunningProcess } from './backends.js';
import { TetherError, isTetherError } from './errors.js';
import { ExecutionId, ExecutionSpec, type ExecutionEvent, type OutputStream, type SignalReason, type StoredEvent } from './events.js';
import type { EventStore, ListOptions, ListPage } from './eventStore.js';
import { ExecutionRecorder, storeWriteFailure } from './executionRecorder.js';
import { newExecutionId, normalizeSignal } from './ids.js';
import { DEFAULT_MAX_LINE_BYTES, DEFAULT_TAIL_SCAN_BYTES, lastBytes, readOutputTail, toLines, outputSlice, type OutputSlice } from './logs.js';
import { MAX_TIMER_MS, setLongTimeout, type LongTimer } from './longTimer.js';
import type {
  CancelOptions,
  CancelResult,
  ExecApi,
  ExecReadOptions,
  ExecReadResult,
  ExecStartParams,
  LogsOptions,
  LogsResult,
  WriteOptions,
} from './machine.js';
import type { ExecutionState } from './state.js';
import { checkSpecSize } from './specLimits.js';
import { parseInput } from './validate.js';

export interface LocalExecOptions {
  readonly store: EventStore;
  /** The default process backend (for executions whose spec names none). */
  readonly process?: ProcessBackend;
  /** Backends an execution can choose by `spec.backend`, by name (the default may be among them). */
  readonly processBackends?: ReadonlyMap<string, ProcessBackend>;
  readonly gpu?: GpuProbe;
  /** Pause a process's output while this many bytes wait to be stored. Default 8 MiB. */
  readonly outputHighWaterBytes?: number;
}

/** What this process holds for an execution it runs (nothing of it is the source of truth). */
interface ActiveExecution {
  readonly id: string;
  readonly spec: ExecutionSpec;
  /** Appends its events after the request in order, holding them while the store cannot write. */
  readonly recorder: ExecutionRecorder;
  process?: RunningProcess;
  stdinOpen: boolean;
  /** writeId → bytes accepted, for de-duplicating retried writes. */
  readonly writeIds: Map<string, Promise<number>>;
  /** Set while a cancel/timeout escalation runs. */
  stopping?: Promise<void>;
  /** A stop asked for before the process existed (while spawning); applied once it does. */
  pendingStop?: { reason: Exclude<SignalReason, 'user'>; signal: NodeJS.Signals; graceMs: number };
  survivors: number[];
  timeout?: LongTimer;
  /** The process has exited: a late timeout must not turn a normal exit into `timed_out`. */
  exited?: boolean;
  readonly gate: AbortController;
}

const DEFAULT_HIGH_WATER = 8 * 1024 * 1024;
const DEFAULT_READ_LIMIT = 1000;
const DEFAULT_LIST_LIMIT = 100;
/** A page of `list` ends once its items take this much as JSON. */
const LIST_PAGE_BYTES = 4 * 1024 * 1024;
/** `list` asks the store for at most this many items at a time. */
const LIST_CHUNK = 16;
const DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024;
const DEFAULT_TAIL_BYTES = 2000;
const DEFAULT_MAX_LINES = 10_000;
const DEFAULT_CANCEL_GRACE_MS = 3000;
/** The name of a ProcessBackend that declares none. */
const DEFAULT_BACKEND = 'process';
/** How long to wait for a killed group to disappear before reporting survivors. */
const VERIFY_GONE_MS = 2000;

/**
 * Runs executions on this machine through the registered process backend and records every
 * step in the EventStore. The store is the source of truth; the map of active executions only
 * holds live process handles.
 */
export class LocalExec implements ExecApi {
  readonly #store: EventStore;
  readonly #process: ProcessBackend | undefined;
  readonly #backends: ReadonlyMap<string, ProcessBackend>;
  readonly #gpu: GpuProbe | undefined;
  readonly #highWater: number;
  readonly #active = new Map<string, ActiveExecution>();
  readonly #starting = new Map<string, Promise<ExecutionState>>();

  constructor(options: LocalExecOptions) {
    this.#store = options.store;
    this.#process = options.process;
    this.#backends = options.processBackends ?? new Map();
    this.#gpu = options.gpu;
    this.#highWater = options.outputHighWaterBytes ?? DEFAULT_HIGH_WATER;
  }

  /** Executions running or queued in this process. */
  get activeCount(): number {
    return this.#active.size;
  }

  async start(params: ExecStartParams): Promise<ExecutionState> {
    if (typeof params !== 'object' || params === null) throw new TetherError('INVALID_ARGUMENT', 'exec.start needs a spec object');
    const { id: rawId, ...rest } = params;
    const spec = parseInput(ExecutionSpec, rest, 'execution spec');
    checkSpecSize(spec);
    const id = rawId === undefined ? newExecutionId() : parseInput(ExecutionId, rawId, 'execution id');
    const pending = this.#starting.get(id);
    if (pending) return pending;
    const started = this.#start(id, spec).finally(() => this.#starting.delete(id));
    this.#starting.set(id, started);
    return started;
  }

  /** The backend a spec runs on: the one it names, or the default. Fails with BACKEND_UNAVAILABLE. */
  #backendFor(spec: ExecutionSpec): { name: string; backend: ProcessBackend } {
    if (spec.backend === undefined || spec.backend === (this.#process?.name ?? DEFAULT_BACKEND)) {
      if (this.#process) return { name: this.#process.name ?? DEFAULT_BACKEND, backend: this.#process };
      if (spec.backend === undefined) {
        throw new TetherError('BACKEND_UNAVAILABLE', 'this machine has no process backend: load @tether/plugin-process (or another ProcessBackend)', {
          backend: 'process',
        });
      }
    }
    const named = spec.backend === undefined ? undefined : this.#backends.get(spec.backend);
    if (!named) {
      throw new TetherError('BACKEND_UNAVAILABLE', `this machine has no process backend named "${spec.backend}"`, {
        backend: spec.backend,
        known: [...new Set([...(this.#process ? [this.#process.name ?? DEFAULT_BACKEND] : []), ...this.#backends.keys()])],
      });
    }
    return { name: spec.backend!, backend: named };
  }

  async #start(id: string, requested: ExecutionSpec): Promise<ExecutionState> {
    const existing = await this.#store.state(id);
    if (existing) return existing;
    const { name } = this.#backendFor(requested);
    // The record says which backend ran it (absent means the default `process`), so a restarted
    // machine with another default still finds it.
    const spec = name === DEFAULT_BACKEND || requested.backend === name ? requested : { ...requested, backend: name };
    const deferGate = this.#backendFor(spec).backend.schedulesGpus === true;
    if (spec.gpuGate && !deferGate && !this.#gpu) {
      throw new TetherError('BACKEND_UNAVAILABLE', 'a GPU gate needs a GPU probe: load @tether/plugin-gpu-nvidia', { backend: 'gpu' });
    }
    try {
      await this.#store.append(id, [{ type: 'ExecutionRequested', data: { spec } }], { expectedSeq: 0 });
    } catch (error) {
      // Another process (or a start before a restart) created it first: that one is the answer.
      if (isTetherError(error, 'APPEND_CONFLICT')) return this.get(id);
      throw error;
    }
    const active: ActiveExecution = {
      id,
      spec,
      recorder: new ExecutionRecorder(this.#store, id),
      stdinOpen: spec.stdin,
      writeIds: new Map(),
      survivors: [],
      gate: new AbortController(),
    };
    this.#active.set(id, active);
    if (spec.gpuGate && !deferGate) {
      void this.#openGateThenSpawn(active).catch(() => undefined);
      return this.get(id);
    }
    return this.#spawn(active);
  }

  async #openGateThenSpawn(active: ActiveExecution): Promise<void> {
    try {
      await this.#gpu!.waitFree(active.spec.gpuGate!, active.gate.signal);
    } catch (error) {
      const cancelled = isTetherError(error, 'ABORTED');
      await this.#finish(active, {
        type: 'ExecutionFailed',
        data: cancelled
          ? { code: 'CANCELLED', message: 'cancelled while waiting for the GPU gate' }
          : { code: isTetherError(error) ? error.code : 'GATE_FAILED', message: describe(error) },
      });
      return;
    }
    await this.#spawn(active);
  }

  async #spawn(active: ActiveExecution): Promise<ExecutionState> {
    const { id, spec } = active;
    let proc: RunningProcess;
    try {
      const { backend } = this.#backendFor(spec);
      proc = await backend.spawn({ ...processSpec(id, spec), ...(spec.gpuGate && backend.schedulesGpus ? { gpuGate: spec.gpuGate } : {}) });
    } catch (error) {
      const code = isTetherError(error) ? String(error.details['errno'] ?? error.code) : 'SPAWN_FAILED';
      return this.#finish(active, { type: 'ExecutionFailed', data: { code, message: describe(error) } });
    }
    await this.#track(active, proc, 'new');
    return this.get(id);
  }

  /**
   * Records what a process does from here on: queue updates, the start, output, the end.
   * `from` says what its stream already holds (a re-attached one is `queued` or `running`).
   * Resolves once its first event (ExecutionQueued or ExecutionStarted) is stored.
   */
  #track(active: ActiveExecution, proc: RunningProcess, from: 'new' | 'queued' | 'running'): Promise<unknown> {
    const { id, spec } = active;
    active.process = proc;
    // Append calls are applied in call order, so output recorded below always follows Started.
    const started = (ref: RunningProcess['ref']) =>
      active.recorder.append([{ type: 'ExecutionStarted', data: { pid: proc.pid, pgid: proc.pgid, tty: spec.tty !== undefined, ...(ref ? { ref } : {}) } }]);
    let first: Promise<unknown> = Promise.resolve();
    let ran: Promise<boolean> = Promise.resolve(true);
    if (proc.running) {
      if (from === 'new') first = active.recorder.append([{ type: 'ExecutionQueued', data: { reason: null, ...(proc.ref ? { ref: proc.ref } : {}) } }]);
      proc.queue$?.subscribe({
        next: (update) => void active.recorder.append([{ type: 'ExecutionQueued', data: { reason: update.reason, ...(update.ref ? { ref: update.ref } : {}) } }]).catch(() => undefined),
        error: () => undefined,
      });
      // A backend that queues resolves `running` before `exit` when the job ran at all: which
      // settled first is decided on the bare promises (recording the start takes a while).
      const runs = Promise.race([proc.running.then((ref) => ({ ref })), proc.exit.then(() => undefined)]);
      ran = runs.then(async (running) => {
        if (!running) return false;
        if (from !== 'running') await started(running.ref);
        return true;
      });
    } else if (from === 'new') {
      first = started(proc.ref);
    }
    const outputDone = ran.then((yes) => (yes ? this.#recordOutput(active, proc) : undefined));
    if (active.pendingStop) {
      const { reason, signal, graceMs } = active.pendingStop;
      void this.#stop(active, reason, signal, graceMs);
    }
    if (spec.timeoutMs !== undefined && !proc.enforcesTimeout) {
      // Not setTimeout: it fires at once for a delay over 2^31 ms (about 24.8 days).
      void ran.then((yes) => {
        if (yes && !active.exited) active.timeout = setLongTimeout(() => void this.#stop(active, 'timeout', 'SIGTERM', spec.killGraceMs), spec.timeoutMs!);
      });
    }
    void (async () => {
      const exit = await proc.exit;
      active.exited = true;
      await outputDone;
      active.timeout?.clear();
      await active.stopping;
      await this.#finish(
        active,
        exit.lost !== undefined
          ? { type: 'ExecutionLost', data: { reason: exit.lost } }
          : exit.failed !== undefined
            ? { type: 'ExecutionFailed', data: exit.failed }
            : {
              type: 'ExecutionExited',
              data: { exitCode: exit.exitCode, signal: exit.signal, survivors: exit.survivors ?? active.survivors, ...(exit.stopReason ? { stopReason: exit.stopReason } : {}) },
            },
      );
    })().catch(() => undefined); // only a closing store fails here; a restart marks the execution lost
    // The process runs: while the store cannot write, its first event is held and recorded later.
    return active.recorder.writtenOrHeld(first);
  }

  /** Stores the process's output as it comes, pausing the process while too much waits for the store. */
  #recordOutput(active: ActiveExecution, proc: RunningProcess): Promise<void> {
    return new Promise((resolve) => {
      let waiting = 0;
      let paused = false;
      let last: Promise<unknown> = Promise.resolve();
      proc.output$.subscribe({
        next: (chunk) => {
          const size = chunk.data.byteLength;
          if (size === 0) return;
          waiting += size;
          if (!paused && waiting >= this.#highWater) {
            paused = true;
            proc.pauseOutput();
          }
          // Held (and the process paused by the high water) while the store cannot write.
          last = active.recorder
            .append([{ type: 'OutputProduced', data: { stream: chunk.stream, data: chunk.data } }])
            .catch(() => undefined) // the store is closing; the execution will be marked lost on restart
            .finally(() => {
              waiting -= size;
              if (paused && waiting <= this.#highWater / 4) {
                paused = false;
                proc.resumeOutput();
              }
            });
        },
        error: () => void last.then(() => resolve()),
        complete: () => void last.then(() => resolve()),
      });
    });
  }

  async #finish(active: ActiveExecution, terminal: ExecutionEvent): Promise<ExecutionState> {
    try {
      await active.recorder.append([terminal]);
    } finally {
      this.#active.delete(active.id);
    }
    return this.get(active.id);
  }

  /** TERM (or `signal`) the group, KILL it after the grace, then make sure nothing of it is left. */
  #stop(active: ActiveExecution, reason: Exclude<SignalReason, 'user'>, signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const proc = active.process;
    if (active.exited) return active.stopping ?? Promise.resolve();
    if (!proc) {
      // Queued behind the GPU gate (abort it) or still spawning (stop it once it exists).
      active.pendingStop = { reason, signal, graceMs };
      active.gate.abort();
      return Promise.resolve();
    }
    active.stopping ??= (async () => {
      // Recorded before the signal goes (or held, in order, while the store cannot write).
      await active.recorder.writtenOrHeld(active.recorder.append([{ type: 'SignalSent', data: { signal, reason } }]));
      proc.signal(signal);
      const exitedInTime = await Promise.race([proc.exit.then(() => true), delay(graceMs).then(() => false)]);
      let survivors = await proc.survivors();
      if (!exitedInTime || survivors.length > 0) {
        await active.recorder.writtenOrHeld(active.recorder.append([{ type: 'SignalSent', data: { signal: 'SIGKILL', reason } }]));
        proc.signal('SIGKILL');
        proc.signalPids(survivors, 'SIGKILL');
        await proc.exit;
        survivors = await waitUntilGone(proc, VERIFY_GONE_MS);
      }
      active.survivors = survivors;
    })();
    return active.stopping;
  }

  async get(id: string): Promise<ExecutionState> {
    const state = await this.#store.state(parseInput(ExecutionId, id, 'execution id'));
    if (!state) throw new TetherError('EXEC_NOT_FOUND', `exec_id not found: ${id}`, { id });
    return state;
  }

  /**
   * A page of executions, newest first. Besides `limit`, a page ends once its items take about
   * 4 MiB as JSON (it always holds at least one), so a listing stays small whatever the specs
   * hold; the cursor continues after the last item returned.
   */
  async list(options: ListOptions = {}): Promise<ListPage> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    // The store is asked in small pages so that no more than one of them is held beyond the cut.
    const items: ExecutionState[] = [];
    let bytes = 0;
    let cursor = options.cursor;
    while (items.length < limit) {
      const page = await this.#store.list({ status: options.status, limit: Math.min(limit - items.length, LIST_CHUNK), cursor });
      for (const [index, item] of page.items.entries()) {
        const size = JSON.stringify(item).length;
        if (items.length > 0 && bytes + size > LIST_PAGE_BYTES) {
          // Cut before this item: continue from the last one kept (the store's cursor is opaque,
          // so it is asked again for exactly the items kept of this chunk).
          const next = index === 0 ? cursor : (await this.#store.list({ status: options.status, limit: index, cursor })).cursor;
          return next === undefined ? { items } : { items, cursor: next };
        }
        items.push(item);
        bytes += size;
      }
      if (page.cursor === undefined) return { items };
      cursor = page.cursor;
    }
    return cursor === undefined ? { items } : { items, cursor };
  }

  async read(id: string, options: ExecReadOptions = {}): Promise<ExecReadResult> {
    let state = await this.get(id);
    const afterSeq = options.afterSeq ?? 0;
    const limit = options.limit ?? DEFAULT_READ_LIMIT;
    const maxBytes = options.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    if (!Number.isInteger(afterSeq) || afterSeq < 0) throw new TetherError('INVALID_ARGUMENT', 'afterSeq must be a non-negative integer');
    if (!Number.isInteger(limit) || limit < 1) throw new TetherError('INVALID_ARGUMENT', 'limit must be a positive integer');
    // A long-poll may return early with no events; a wait beyond what one timer holds is cut to it.
    const waitMs = Math.min(options.waitMs ?? 0, MAX_TIMER_MS);
    if (state.lastSeq <= afterSeq && state.status !== 'finished' && waitMs > 0) {
      const next$ = this.#store.follow(id, afterSeq).pipe(timeout({ first: waitMs, with: () => EMPTY }));
      // A store that cannot write ends the wait early; reading goes on.
      await firstValueFrom(next$, { defaultValue: undefined }).catch(() => undefined);
    }
    const events = await this.#store.read(id, { afterSeq, limit, maxBytes });
    state = await this.get(id);
    return { events, lastSeq: state.lastSeq, finished: state.status === 'finished' };
  }

  follow(id: string, afterSeq = 0): Observable<StoredEvent> {
    // An unknown id fails with EXEC_NOT_FOUND instead of waiting for a stream that may never come.
    return from(this.get(id)).pipe(switchMap(() => this.#store.follow(id, afterSeq)));
  }

  async logs(id: string, options: LogsOptions = {}): Promise<LogsResult> {
    const state = await this.get(id);
    const streams = options.streams ?? ['stdout'];
    const maxLines = options.maxLines ?? DEFAULT_MAX_LINES;
    const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    const tailBytes =
      options.tailBytes ?? (options.tailLines === undefined && options.afterSeq === undefined && options.since === undefined ? DEFAULT_TAIL_BYTES : undefined);
    let slices: OutputSlice[];
    // A time range without a cursor is read from its end, so that a cap keeps the newest lines.
    if (tailBytes !== undefined || options.tailLines !== undefined || (options.since !== undefined && options.afterSeq === undefined)) {
      slices = await readOutputTail(this.#store, id, {
        streams,
        bytes: tailBytes,
        lines: options.tailLines ?? maxLines,
        afterSeq: options.afterSeq,
        since: options.since,
        until: options.until,
        beforeSeq: Math.min(state.lastSeq + 1, options.beforeSeq ?? Number.POSITIVE_INFINITY),
        maxLineBytes,
      });
      if (tailBytes !== undefined) slices = lastBytes(slices, tailBytes);
    } else {
      slices = await this.#readForward(id, new Set<OutputStream>(streams), options, state.lastSeq, maxLines);
    }
    let lines = toLines(slices, maxLineBytes);
    const keep = Math.min(maxLines, options.tailLines ?? maxLines);
    if (lines.length > keep) lines = lines.slice(lines.length - keep);
    return { lines, lastSeq: state.lastSeq };
  }

  async #readForward(id: string, streams: ReadonlySet<OutputStream>, options: LogsOptions, lastSeq: number, maxLines: number): Promise<OutputSlice[]> {
    const slices: OutputSlice[] = [];
    let newlines = 0;
    let bytes = 0;
    let after = options.afterSeq ?? 0;
    // Bounded like a tail: pages of at most 1 MiB, at most the scan budget in all (what is past
    // it is read by the next call, from the last seq returned).
    while (after < lastSeq && newlines <= maxLines && bytes < DEFAULT_TAIL_SCAN_BYTES) {
      const page = await this.#store.read(id, { afterSeq: after, beforeSeq: lastSeq + 1, limit: 256, maxBytes: 1024 * 1024 });
      if (page.length === 0) break;
      for (const event of page) {
        if (options.since !== undefined && event.ts < options.since) continue;
        const slice = outputSlice(event, streams, options.until);
        if (!slice) continue;
        slices.push(slice);
        bytes += slice.data.byteLength;
        for (let i = slice.data.indexOf(0x0a); i !== -1; i = slice.data.indexOf(0x0a, i + 1)) newlines++;
      }
      after = page[page.length - 1]!.seq;
    }
    return slices;
  }

  async write(id: string, data: Uint8Array | string, options: WriteOptions = {}): Promise<{ bytes: number }> {
    const active = await this.#activeProcess(id);
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    if (!(bytes instanceof Uint8Array)) throw new TetherError('INVALID_ARGUMENT', 'write data must be bytes or a string');
    const { writeId, eof = false } = options;
    if (writeId !== undefined) {
      const previous = active.writeIds.get(writeId);
      if (previous) return { bytes: await previous };
    }
    if (!active.stdinOpen) throw new TetherError('STDIN_CLOSED', `stdin of ${id} is not open (start it with stdin: true)`, { id });
    // Input that could not be recorded is not written.
    const unwritable = storeWriteFailure(this.#store);
    if (unwritable) throw unwritable;
    const done = (async () => {
      if (bytes.byteLength > 0) await active.process!.write(bytes);
      if (eof) {
        active.stdinOpen = false;
        await active.process!.closeStdin();
      }
      await this.#store.append(id, [{ type: 'InputWritten', data: { bytes: bytes.byteLength, writeId, eof } }]);
      return bytes.byteLength;
    })();
    if (writeId !== undefined) active.writeIds.set(writeId, done);
    return { bytes: await done };
  }

  async closeStdin(id: string): Promise<void> {
    const active = await this.#activeProcess(id);
    if (!active.stdinOpen) return;
    await this.write(id, new Uint8Array(0), { eof: true });
  }

  async signal(id: string, signal: string): Promise<void> {
    const name = normalizeSignal(signal);
    const active = await this.#activeProcess(id);
    await this.#store.append(id, [{ type: 'SignalSent', data: { signal: name, reason: 'user' } }]);
    active.process!.signal(name);
  }

  async cancel(id: string, options: CancelOptions = {}): Promise<CancelResult> {
    const state = await this.get(id);
    const signal = normalizeSignal(options.signal ?? 'SIGTERM');
    const graceMs = options.graceMs ?? DEFAULT_CANCEL_GRACE_MS;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw new TetherError('INVALID_ARGUMENT', 'graceMs must be a non-negative number');
    const active = this.#active.get(state.id);
    if (state.status === 'finished' || !active) {
      return { cancelled: false, reason: state.status === 'finished' ? 'already finished' : 'not running in this daemon', state };
    }
    await this.#stop(active, 'cancel', signal, graceMs);
    return { cancelled: true, state: await this.wait(id) };
  }

  async resize(id: string, cols: number, rows: number): Promise<void> {
    const active = await this.#activeProcess(id);
    if (!active.spec.tty) throw new TetherError('NOT_A_TTY', `${id} was not started with a terminal`, { id });
    if (![cols, rows].every((n) => Number.isInteger(n) && n >= 1 && n <= 1000)) {
      throw new TetherError('INVALID_ARGUMENT', 'cols and rows are integers from 1 to 1000');
    }
    active.process!.resize(cols, rows);
  }

  async wait(id: string): Promise<ExecutionState> {
    const state = await this.get(id);
    if (state.status !== 'finished') await lastValueFrom(this.#store.follow(id, state.lastSeq), { defaultValue: undefined });
    return this.get(id);
  }

  /**
   * Marks executions that a previous run of this machine left running or queued as lost — unless
   * their backend re-attaches to them (a batch job the scheduler kept), which then continue.
   * Each backend with `reattach` is asked once, with all of its interrupted executions.
   * Call once at start, before serving.
   */
  async markInterruptedLost(reason = 'the daemon restarted while it ran'): Promise<string[]> {
    const interrupted: ExecutionState[] = [];
    for (const status of ['running', 'queued'] as const) {
      let cursor: string | undefined;
      do {
        const page = await this.#store.list({ status, limit: 500, cursor });
        for (const state of page.items) if (!this.#active.has(state.id)) interrupted.push(state);
        cursor = page.cursor;
      } while (cursor);
    }
    // Grouped by the backend that ran them; those whose backend is gone or cannot re-attach are lost.
    const byBackend = new Map<ProcessBackend, ExecutionState[]>();
    const lost = new Map<string, string>();
    for (const state of interrupted) {
      let backend: ProcessBackend | undefined;
      try {
        backend = state.spec ? this.#backendFor(state.spec).backend : undefined;
      } catch {
        backend = undefined;
      }
      if (!backend?.reattach) lost.set(state.id, reason);
      else byBackend.set(backend, [...(byBackend.get(backend) ?? []), state]);
    }
    for (const [backend, states] of byBackend) {
      let answers: Map<string, ReattachResult>;
      try {
        answers = await backend.reattach!(states.map(reattachRequest));
      } catch (error) {
        answers = new Map(states.map((state) => [state.id, { lost: `${reason} (re-attach failed: ${describe(error)})` }]));
      }
      for (const state of states) {
        const answer = answers.get(state.id);
        if (answer && 'process' in answer) {
          const active: ActiveExecution = { id: state.id, spec: state.spec!, recorder: new ExecutionRecorder(this.#store, state.id), stdinOpen: false, writeIds: new Map(), survivors: [], gate: new AbortController() };
          this.#active.set(state.id, active);
          await this.#track(active, answer.process, state.status === 'running' ? 'running' : 'queued');
        } else {
          lost.set(state.id, answer?.lost ?? reason);
        }
      }
    }
    for (const [id, why] of lost) await this.#store.append(id, [{ type: 'ExecutionLost', data: { reason: why } }]);
    return [...lost.keys()];
  }

  /** Cancels every active execution (used when the machine shuts down). */
  async shutdown(graceMs = DEFAULT_CANCEL_GRACE_MS): Promise<void> {
    await Promise.allSettled([...this.#active.keys()].map((id) => this.cancel(id, { graceMs })));
  }

  async #activeProcess(id: string): Promise<ActiveExecution> {
    const state = await this.get(id);
    const active = this.#active.get(state.id);
    if (state.status === 'finished') throw new TetherError('EXEC_FINISHED', `${id} has already finished`, { id });
    if (!active?.process) {
      throw new TetherError(
        state.status === 'queued' ? 'INVALID_ARGUMENT' : 'EXEC_FINISHED',
        state.status === 'queued' ? `${id} is still queued` : `${id} is not running in this daemon`,
        { id },
      );
    }
    return active;
  }
}

/** What a backend is asked to start for a spec. */
function processSpec(id: string, spec: ExecutionSpec): ProcessSpec {
  const argv: [string, ...string[]] = spec.argv ? [spec.argv[0]!, ...spec.argv.slice(1)] : [spec.shell ?? 'sh', spec.login ? '-lc' : '-c', spec.command!];
  return {
    id,
    argv,
    cwd: spec.cwd,
    env: spec.env,
    envMode: spec.envMode,
    tty: spec.tty,
    stdin: spec.stdin,
    timeoutMs: spec.timeoutMs,
    killGraceMs: spec.killGraceMs,
    backendOptions: spec.backendOptions,
  };
}

function reattachRequest(state: ExecutionState): ReattachRequest {
  return {
    id: state.id,
    pid: state.pid,
    ...(state.backendRef ? { ref: state.backendRef } : {}),
    spec: processSpec(state.id, state.spec!),
    outputOffset: state.bytes.stdout + state.bytes.stderr + state.bytes.pty,
    resume: { stdout: state.bytes.stdout, stderr: state.bytes.stderr },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => void setLongTimeout(resolve, ms).unref());
}

async function waitUntilGone(proc: RunningProcess, withinMs: number): Promise<number[]> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const survivors = await proc.survivors();
    if (survivors.length === 0 || Date.now() >= deadline) return survivors;
    proc.signalPids(survivors, 'SIGKILL');
    await delay(25);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
