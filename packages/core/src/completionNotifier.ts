import type { ProcessBackend } from './backends.js';
import type { AppendOptions, AppendResult, EventStore, ListOptions, ListPage, ReadOptions, StoreHealth } from './eventStore.js';
import { isTerminal, type ExecutionEvent, type NotificationChannel, type StoredEvent } from './events.js';
import type { Observable } from 'rxjs';
import { durationMs, type ExecutionState } from './state.js';
import { VERSION } from './version.js';

export interface CompletionNotifierOptions {
  /** Where the executions are recorded (their spec says whom to notify; the outcome is appended). */
  readonly store: EventStore;
  /** Runs `notify.command`; without one a command notification is recorded as failed. */
  readonly process?: ProcessBackend;
  /** The machine's name, put in the summary. */
  readonly machineName: string;
  /** Tries of a URL notification. Default 5. */
  readonly urlAttempts?: number;
  /** Delay before the first retry; doubled each time (with jitter), capped at 30 s. Default 500 ms. */
  readonly retryBaseMs?: number;
  /** Time limit of one HTTP try. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Time limit of a notification command (then it is killed and recorded as failed). Default 60 s. */
  readonly commandTimeoutMs?: number;
}

/** What a notification carries (the command's stdin, the POST body): the `exec result` fields. */
export interface CompletionSummary {
  readonly exec_id: string;
  readonly machine: string;
  readonly status: ExecutionState['status'];
  readonly end_reason: ExecutionState['endReason'];
  readonly exit_code: number | null;
  readonly signal: string | null;
  readonly error: string | null;
  readonly cmd: string;
  readonly cwd: string | null;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly duration_ms: number;
  readonly stdout_bytes: number;
  readonly stderr_bytes: number;
  readonly last_seq: number;
}

const MAX_RETRY_DELAY_MS = 30_000;
/** How much of a failing command's stderr the record keeps. */
const STDERR_KEPT = 500;

/**
 * Delivers completion notifications (`spec.notify`) for the executions of one machine, from the
 * machine's own process: a command run through the process backend with the summary on stdin, an
 * HTTP POST of the summary retried with backoff. Each outcome is appended to the execution's
 * stream after its terminal event, so `exec result` shows it. No client needs to be connected.
 *
 * It learns that an execution has ended from `watch(store)`, a store that passes every append on
 * and calls back after a terminal event is written — whatever appended it (the exec engine, the
 * marking of interrupted executions as lost at start, a backend re-attaching after a restart).
 */
export class CompletionNotifier {
  readonly #options: CompletionNotifierOptions;
  readonly #inFlight = new Set<Promise<void>>();
  /** Executions whose notifications this process is delivering (an end seen twice is delivered once). */
  readonly #delivering = new Set<string>();
  readonly #closing = new AbortController();

  constructor(options: CompletionNotifierOptions) {
    this.#options = options;
  }

  /** A store that calls `ended(id)` after each terminal event it has written. */
  watch(store: EventStore): EventStore {
    return new EndObservingStore(store, (id) => this.ended(id));
  }

  /** The execution has ended: deliver its notifications (if its spec asks for any) in the background. */
  ended(id: string): void {
    if (this.#closing.signal.aborted || this.#delivering.has(id)) return;
    this.#delivering.add(id);
    const delivery = this.#deliver(id).catch(() => undefined); // a closing store; a restart resumes it
    this.#inFlight.add(delivery);
    void delivery.finally(() => {
      this.#inFlight.delete(delivery);
      this.#delivering.delete(id);
    });
  }

  /**
   * Delivers what the store's recently finished executions still owe (their daemon stopped
   * between the end and the notification). Looks at the newest `limit` finished executions.
   */
  async resume(limit = 500): Promise<void> {
    const page = await this.#options.store.list({ status: 'finished', limit });
    for (const state of page.items) if (owed(state).length > 0) this.ended(state.id);
  }

  /** Waits up to `ms` for deliveries under way, then abandons the rest (they are resumed at the next start). */
  async close(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
    this.#closing.abort();
  }

  async #deliver(id: string): Promise<void> {
    const { store } = this.#options;
    const state = await store.state(id);
    if (!state || state.status !== 'finished') return;
    const channels = owed(state);
    if (channels.length === 0) return;
    const body = `${JSON.stringify(completionSummary(state, this.#options.machineName))}\n`;
    await Promise.all(
      channels.map(async (channel) => {
        const outcome = channel === 'command' ? await this.#runCommand(id, state.spec!.notify!.command!, body) : await this.#post(state.spec!.notify!.url!, body);
        const event: ExecutionEvent = outcome.ok
          ? { type: 'NotificationDelivered', data: { channel, attempts: outcome.attempts, detail: outcome.detail } }
          : { type: 'NotificationFailed', data: { channel, attempts: outcome.attempts, error: outcome.detail.slice(0, 1000) } };
        await store.append(id, [event]);
      }),
    );
  }

  async #runCommand(id: string, command: string, body: string): Promise<Outcome> {
    const backend = this.#options.process;
    if (!backend) return { ok: false, attempts: 1, detail: 'this machine has no process backend to run the notify command' };
    let proc;
    try {
      proc = await backend.spawn({ id: `${id.slice(0, 120)}.notify`, argv: ['sh', '-c', command], envMode: 'merge', env: { TETHER_NOTIFY_EXEC_ID: id }, stdin: true });
    } catch (error) {
      return { ok: false, attempts: 1, detail: `could not start: ${describe(error)}` };
    }
    let stderr = '';
    const decoder = new TextDecoder();
    proc.output$.subscribe({
      next: (chunk) => {
        if (chunk.stream === 'stderr' && stderr.length < STDERR_KEPT) stderr += decoder.decode(chunk.data, { stream: true });
      },
      error: () => undefined,
    });
    // A command that does not read its stdin must not make the write fail the notification.
    await proc.write(new TextEncoder().encode(body)).catch(() => undefined);
    await proc.closeStdin().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const limit = this.#options.commandTimeoutMs ?? 60_000;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), limit)));
    const exit = await Promise.race([proc.exit, timedOut]);
    clearTimeout(timer);
    if (exit === 'timeout') {
      proc.signal('SIGKILL');
      await proc.exit;
      return { ok: false, attempts: 1, detail: `timed out after ${limit} ms (killed)` };
    }
    if (exit.exitCode === 0) return { ok: true, attempts: 1, detail: 'exit 0' };
    const why = exit.signal ? `killed by ${exit.signal}` : `exit ${exit.exitCode}`;
    const tail = stderr.trim().slice(0, STDERR_KEPT);
    return { ok: false, attempts: 1, detail: tail ? `${why}: ${tail}` : why };
  }

  async #post(url: string, body: string): Promise<Outcome> {
    const attempts = this.#options.urlAttempts ?? 5;
    const base = this.#options.retryBaseMs ?? 500;
    let last = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) {
        const ceiling = Math.min(MAX_RETRY_DELAY_MS, base * 2 ** (attempt - 2));
        if (!(await sleep(ceiling / 2 + Math.random() * (ceiling / 2), this.#closing.signal))) return { ok: false, attempts: attempt - 1, detail: `${last}; the daemon stopped before the next try` };
      }
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': `tether/${VERSION}` },
          body,
          redirect: 'manual',
          signal: AbortSignal.any([AbortSignal.timeout(this.#options.requestTimeoutMs ?? 10_000), this.#closing.signal]),
        });
        await response.body?.cancel().catch(() => undefined);
        if (response.status >= 200 && response.status < 300) return { ok: true, attempts: attempt, detail: `HTTP ${response.status}` };
        last = `HTTP ${response.status}`;
        // Another answer will not come from asking again: only server errors, 408 and 429 are retried.
        if (response.status < 500 && response.status !== 408 && response.status !== 429) return { ok: false, attempts: attempt, detail: last };
      } catch (error) {
        last = networkError(error);
      }
    }
    return { ok: false, attempts, detail: last };
  }
}

interface Outcome {
  readonly ok: boolean;
  readonly attempts: number;
  readonly detail: string;
}

/** The channels of `spec.notify` that have no recorded outcome yet. */
function owed(state: ExecutionState): NotificationChannel[] {
  const notify = state.spec?.notify;
  if (!notify) return [];
  const done = new Set((state.notifications ?? []).map((n) => n.channel));
  const channels: NotificationChannel[] = [];
  if (notify.command !== undefined && !done.has('command')) channels.push('command');
  if (notify.url !== undefined && !done.has('url')) channels.push('url');
  return channels;
}

/** The summary a notification carries. */
export function completionSummary(state: ExecutionState, machine: string): CompletionSummary {
  const spec = state.spec;
  return {
    exec_id: state.id,
    machine,
    status: state.status,
    end_reason: state.endReason,
    exit_code: state.exitCode,
    signal: state.signal,
    error: state.error?.message ?? null,
    cmd: spec?.command ?? (spec?.argv ?? []).join(' '),
    cwd: spec?.cwd ?? null,
    started_at: iso(state.startedAt),
    finished_at: iso(state.finishedAt),
    duration_ms: durationMs(state),
    stdout_bytes: state.bytes.stdout + state.bytes.pty,
    stderr_bytes: state.bytes.stderr,
    last_seq: state.lastSeq,
  };
}

/** An EventStore passing everything to `inner`, calling `onEnded` after an append that wrote a terminal event. */
class EndObservingStore implements EventStore {
  readonly #inner: EventStore;
  readonly #onEnded: (stream: string) => void;

  constructor(inner: EventStore, onEnded: (stream: string) => void) {
    this.#inner = inner;
    this.#onEnded = onEnded;
  }

  async append(stream: string, events: readonly ExecutionEvent[], options?: AppendOptions): Promise<AppendResult> {
    const result = await this.#inner.append(stream, events, options);
    if (events.some(isTerminal)) this.#onEnded(stream);
    return result;
  }
  read(stream: string, options?: ReadOptions): Promise<StoredEvent[]> {
    return this.#inner.read(stream, options);
  }
  follow(stream: string, afterSeq?: number): Observable<StoredEvent> {
    return this.#inner.follow(stream, afterSeq);
  }
  state(stream: string): Promise<ExecutionState | undefined> {
    return this.#inner.state(stream);
  }
  list(options?: ListOptions): Promise<ListPage> {
    return this.#inner.list(options);
  }
  durableSeq(stream: string): Promise<number> {
    return this.#inner.durableSeq(stream);
  }
  health(): StoreHealth {
    return this.#inner.health?.() ?? { ok: true };
  }
  whenWritable(): Promise<void> {
    return this.#inner.whenWritable?.() ?? Promise.resolve();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `ECONNREFUSED`, `timed out`…: fetch hides the cause of a failed request one level down. */
function networkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  if ((error as { name?: string })?.name === 'TimeoutError') return 'timed out';
  return cause?.code ?? cause?.message ?? describe(error);
}

/** Resolves true after `ms`, false at once if `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
