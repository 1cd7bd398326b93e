import type { ExecutionState, ExecutionStatus, MachineApi } from '@tether/core';

/** One row of the executions page. */
export interface ExecutionRow {
  readonly machine: string;
  readonly id: string;
  readonly status: ExecutionStatus;
  readonly endReason: ExecutionState['endReason'];
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The shell command, or the argv joined by spaces. */
  readonly command: string;
  readonly requestedAt: number | null;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly bytes: ExecutionState['bytes'];
  readonly truncatedBytes: number;
  /** Held by a GPU gate (queued with a gate in its spec). */
  readonly gpuGate: boolean;
}

export interface ListQuery {
  readonly status?: ExecutionStatus;
  /** Case-insensitive text searched in the id, the command, the cwd and the labels. */
  readonly text?: string;
  readonly limit: number;
  /** From the previous page. */
  readonly cursor?: string;
}

export interface ListResult {
  readonly items: readonly ExecutionRow[];
  /** Present while more may follow. */
  readonly cursor?: string;
  /** Machines that could not be listed. */
  readonly errors: ReadonlyArray<{ readonly machine: string; readonly message: string }>;
}

/** Where one machine's listing stands: the store cursor of the page being consumed, and how many of its items are used. */
interface Position {
  readonly c?: string;
  readonly s: number;
  readonly d?: true;
}

/** Store pages fetched per machine for one request (bounds a text search over a long history). */
const MAX_PAGES_PER_REQUEST = 25;
const STORE_PAGE = 200;

export function commandOf(state: ExecutionState): string {
  const spec = state.spec;
  if (!spec) return '';
  return spec.command ?? spec.argv?.join(' ') ?? '';
}

export function rowOf(machine: string, state: ExecutionState): ExecutionRow {
  return {
    machine,
    id: state.id,
    status: state.status,
    endReason: state.endReason,
    exitCode: state.exitCode,
    signal: state.signal,
    command: commandOf(state),
    requestedAt: state.requestedAt,
    startedAt: state.startedAt,
    finishedAt: state.finishedAt,
    bytes: state.bytes,
    truncatedBytes: state.truncatedBytes,
    gpuGate: state.status === 'queued' && state.spec?.gpuGate !== undefined,
  };
}

function matches(state: ExecutionState, text: string): boolean {
  const spec = state.spec;
  const hay = [state.id, commandOf(state), spec?.cwd ?? '', ...Object.entries(spec?.labels ?? {}).flat()].join('\n').toLowerCase();
  return hay.includes(text);
}

/** One machine's executions, newest first, read page by page through the store's cursor. */
class Source {
  #page: readonly ExecutionState[] = [];
  #pageCursor: string | undefined;
  #next: string | undefined;
  #used = 0;
  #done = false;
  #loaded = false;
  #pages = 0;
  error: string | undefined;

  constructor(
    readonly name: string,
    readonly api: MachineApi,
    readonly status: ExecutionStatus | undefined,
    position: Position | undefined,
  ) {
    this.#pageCursor = position?.c;
    this.#used = position?.s ?? 0;
    this.#done = position?.d === true;
  }

  /** Newest unconsumed execution, or undefined when the machine has none left (or the page budget ran out: `exhausted`). */
  async peek(): Promise<ExecutionState | undefined> {
    while (!this.#done && !this.error) {
      if (this.#loaded && this.#used < this.#page.length) return this.#page[this.#used];
      if (this.#loaded) {
        if (this.#next === undefined) {
          this.#done = true;
          break;
        }
        this.#pageCursor = this.#next;
        this.#used = 0;
        this.#loaded = false;
      }
      if (this.#pages >= MAX_PAGES_PER_REQUEST) return undefined;
      try {
        const page = await this.api.exec.list({ limit: STORE_PAGE, ...(this.status ? { status: this.status } : {}), ...(this.#pageCursor ? { cursor: this.#pageCursor } : {}) });
        this.#pages += 1;
        this.#page = page.items;
        this.#next = page.cursor;
        this.#loaded = true;
      } catch (error) {
        this.error = error instanceof Error ? error.message : String(error);
      }
    }
    return undefined;
  }

  get exhausted(): boolean {
    return this.#pages >= MAX_PAGES_PER_REQUEST && !this.#done && !(this.#loaded && this.#used < this.#page.length);
  }

  get finished(): boolean {
    return this.#done || this.error !== undefined;
  }

  take(): void {
    this.#used += 1;
  }

  position(): Position {
    if (this.finished) return { s: 0, d: true };
    return { ...(this.#pageCursor ? { c: this.#pageCursor } : {}), s: this.#used };
  }
}

/**
 * A page of executions across machines, newest first by request time: each machine's list is
 * read through its own store cursor and the lists are merged. The returned cursor holds every
 * machine's position, so the next page continues exactly where this one stopped.
 */
export async function listExecutions(machines: ReadonlyArray<{ name: string; api: MachineApi }>, query: ListQuery): Promise<ListResult> {
  const positions = decodeCursor(query.cursor);
  const sources = machines.map((m) => new Source(m.name, m.api, query.status, positions?.[m.name]));
  const text = query.text?.trim().toLowerCase() ?? '';
  const items: ExecutionRow[] = [];
  for (;;) {
    if (items.length >= query.limit) break;
    const heads = await Promise.all(sources.map(async (s) => ({ s, head: await s.peek() })));
    let best: { s: Source; head: ExecutionState } | undefined;
    for (const { s, head } of heads) {
      if (head && (!best || (head.requestedAt ?? 0) > (best.head.requestedAt ?? 0))) best = { s, head };
    }
    if (!best) break;
    best.s.take();
    if (text === '' || matches(best.head, text)) items.push(rowOf(best.s.name, best.head));
  }
  const more = sources.some((s) => !s.finished);
  const cursor = more ? encodeCursor(Object.fromEntries(sources.map((s) => [s.name, s.position()]))) : undefined;
  return {
    items,
    ...(cursor ? { cursor } : {}),
    errors: sources.filter((s) => s.error !== undefined).map((s) => ({ machine: s.name, message: s.error! })),
  };
}

function encodeCursor(positions: Record<string, Position>): string {
  return Buffer.from(JSON.stringify(positions)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): Record<string, Position> | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    for (const p of Object.values(value)) {
      if (typeof p !== 'object' || p === null || typeof (p as Position).s !== 'number' || ((p as Position).c !== undefined && typeof (p as Position).c !== 'string')) throw new Error('bad position');
    }
    return value as Record<string, Position>;
  } catch {
    throw new BadCursor();
  }
}

export class BadCursor extends Error {
  constructor() {
    super('cursor is not one this dashboard gave out');
  }
}
