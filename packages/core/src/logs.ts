import type { OutputStream, StoredEvent } from './events.js';
import type { EventStore } from './eventStore.js';
import type { LogLine } from './machine.js';

/** A piece of recorded output. */
export interface OutputSlice {
  readonly stream: OutputStream;
  readonly seq: number;
  readonly ts: number;
  readonly data: Uint8Array;
}

export interface TailOptions {
  /** Default `['stdout']`. */
  readonly streams?: readonly OutputStream[];
  /** Enough output to hold the last N bytes. */
  readonly bytes?: number;
  /** Enough output to hold the last N complete lines (plus a trailing partial one). */
  readonly lines?: number;
  /** Only output from events before this seq. */
  readonly beforeSeq?: number;
  /** Only output from events after this seq / at or after this time (the tail stops there). */
  readonly afterSeq?: number;
  readonly since?: number;
  /** Only output recorded before this time (epoch ms). */
  readonly until?: number;
}

// Pages grow from a few events (a short tail of a large execution costs a few reads of large
// events) to a few hundred (a long tail of small events costs few round trips).
const FIRST_PAGE = 4;
const MAX_PAGE = 512;
const NEWLINE = 0x0a;

/**
 * The end of an execution's output, found by reading the stream backwards page by page: the
 * cost depends on the size of the tail, not of the execution. Returns slices oldest first; the
 * first may hold more than was asked (trim with `toLines`/`lastBytes`).
 */
export async function readOutputTail(store: EventStore, stream: string, options: TailOptions): Promise<OutputSlice[]> {
  const streams = new Set<OutputStream>(options.streams ?? ['stdout']);
  const wantBytes = options.bytes ?? Number.POSITIVE_INFINITY;
  const wantNewlines = options.lines === undefined ? Number.POSITIVE_INFINITY : options.lines + 1;
  const slices: OutputSlice[] = [];
  let bytes = 0;
  let newlines = 0;
  let beforeSeq = options.beforeSeq;
  for (let limit = FIRST_PAGE; ; limit = Math.min(limit * 2, MAX_PAGE)) {
    const page = await store.read(stream, { reverse: true, limit, beforeSeq, afterSeq: options.afterSeq });
    if (page.length === 0) break;
    for (const event of page) {
      if (options.since !== undefined && event.ts < options.since) return slices.reverse();
      const slice = outputSlice(event, streams, options.until);
      if (!slice) continue;
      slices.push(slice);
      bytes += slice.data.byteLength;
      newlines += countNewlines(slice.data);
      if (bytes >= wantBytes || newlines >= wantNewlines) return slices.reverse();
    }
    beforeSeq = page[page.length - 1]!.seq;
    if (beforeSeq <= 1) break;
  }
  return slices.reverse();
}

/** The output slices of a stored event, if it is output of one of `streams` (and before `until`). */
export function outputSlice(event: StoredEvent, streams: ReadonlySet<OutputStream>, until?: number): OutputSlice | undefined {
  if (event.type !== 'OutputProduced' || !streams.has(event.data.stream)) return undefined;
  if (until !== undefined && event.ts >= until) return undefined;
  return { stream: event.data.stream, seq: event.seq, ts: event.ts, data: event.data.data };
}

function countNewlines(data: Uint8Array): number {
  let n = 0;
  for (let i = data.indexOf(NEWLINE); i !== -1; i = data.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/** Keeps only the last `n` bytes of the slices (together). */
export function lastBytes(slices: readonly OutputSlice[], n: number): OutputSlice[] {
  const kept: OutputSlice[] = [];
  let room = n;
  for (let i = slices.length - 1; i >= 0 && room > 0; i--) {
    const slice = slices[i]!;
    const take = Math.min(room, slice.data.byteLength);
    kept.push(take === slice.data.byteLength ? slice : { ...slice, data: slice.data.subarray(slice.data.byteLength - take) });
    room -= take;
  }
  return kept.reverse();
}

/**
 * Splits output into lines, each stream separately (a line of stdout is never glued to one of
 * stderr); a multi-byte character split across chunks decodes whole. Lines are ordered by the
 * seq where they end; a last line without a newline is included.
 */
export function toLines(slices: readonly OutputSlice[]): LogLine[] {
  const lines: LogLine[] = [];
  const open = new Map<OutputStream, { decoder: InstanceType<typeof TextDecoder>; text: string }>();
  for (const slice of slices) {
    let state = open.get(slice.stream);
    if (!state) open.set(slice.stream, (state = { decoder: new TextDecoder('utf-8'), text: '' }));
    const text = state.text + state.decoder.decode(slice.data, { stream: true });
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      lines.push({ stream: slice.stream, seq: slice.seq, line: stripCr(text.slice(start, nl)) });
      start = nl + 1;
    }
    state.text = text.slice(start);
  }
  const lastSeq = new Map<OutputStream, number>();
  for (const slice of slices) lastSeq.set(slice.stream, slice.seq);
  for (const [stream, state] of open) {
    const rest = state.text + state.decoder.decode();
    if (rest !== '') lines.push({ stream, seq: lastSeq.get(stream)!, line: stripCr(rest) });
  }
  return lines.sort((a, b) => a.seq - b.seq);
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
