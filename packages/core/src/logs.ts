import type { OutputStream, StoredEvent } from './events.js';
import type { EventStore } from './eventStore.js';
import type { LogLine } from './machine.js';

/** A piece of recorded output. */
export interface OutputSlice {
  readonly stream: OutputStream;
  readonly seq: number;
  readonly ts: number;
  readonly data: Uint8Array;
  /**
   * Output of this stream before this slice exists but was not kept: the line it starts in is
   * longer than the tail's `maxLineBytes` (or the tail's scan budget ran out), so that line
   * comes back cut (`LogLine.cut`). Slices of the same stream before this one, if any, end
   * where that line starts.
   */
  readonly cutBefore?: true;
}

/** A line longer than this comes back as its last this-many bytes, marked `cut`. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
/** A tail by lines reads at most this much output (a tail by bytes: at most what it asks for, if more). */
export const DEFAULT_TAIL_SCAN_BYTES = 16 * 1024 * 1024;

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
  /** A line longer than this keeps only its end (marked cut); a tail by lines reads past the rest of it, one by bytes stops. Default 64 KiB. */
  readonly maxLineBytes?: number;
  /** Read at most this many bytes of output, kept or read past (at least `bytes`, when given). Default 16 MiB. */
  readonly maxScanBytes?: number;
}

// Pages grow from a few events (a short tail of a large execution costs a few reads of large
// events) to a few hundred (a long tail of small events costs few round trips), and hold at most
// PAGE_BYTES of output, so no one step of a tail holds the event loop for long.
const FIRST_PAGE = 4;
const MAX_PAGE = 512;
const PAGE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * The end of an execution's output, found by reading the stream backwards page by page: the
 * cost depends on the size of the tail, not of the execution — nor of its lines. Of a line
 * longer than `maxLineBytes` only its end is kept (the slice where the kept part starts has
 * `cutBefore`); the rest of it is read past, not kept, and a tail by lines goes on with the
 * lines before it (a tail by bytes stops there). No tail reads more than `maxScanBytes` (kept or read past); where it stopped early
 * the oldest slice has `cutBefore`. Returns slices oldest first; the first may hold more than
 * was asked (trim with `toLines`/`lastBytes`).
 */
export async function readOutputTail(store: EventStore, stream: string, options: TailOptions): Promise<OutputSlice[]> {
  const streams = new Set<OutputStream>(options.streams ?? ['stdout']);
  const wantBytes = options.bytes ?? Number.POSITIVE_INFINITY;
  const wantNewlines = options.lines === undefined ? Number.POSITIVE_INFINITY : options.lines + 1;
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const maxScan = Math.max(options.maxScanBytes ?? DEFAULT_TAIL_SCAN_BYTES, options.bytes ?? 0);
  const slices: OutputSlice[] = [];
  let bytes = 0;
  let scanned = 0;
  let newlines = 0;
  // Per stream: bytes read back since the oldest newline seen, i.e. the part read so far of
  // the line the tail is in; `skipping` while reading past the middle of a cut line.
  const open = new Map<OutputStream, { bytes: number; skipping: boolean }>();
  const markOldest = () => {
    const oldest = slices.pop();
    if (oldest) slices.push({ ...oldest, cutBefore: true });
  };
  let beforeSeq = options.beforeSeq;
  for (let limit = FIRST_PAGE; ; limit = Math.min(limit * 2, MAX_PAGE)) {
    const page = await store.read(stream, { reverse: true, limit, beforeSeq, afterSeq: options.afterSeq, maxBytes: PAGE_BYTES });
    if (page.length === 0) break;
    for (const event of page) {
      if (options.since !== undefined && event.ts < options.since) return slices.reverse();
      let slice = outputSlice(event, streams, options.until);
      if (!slice) continue;
      scanned += slice.data.byteLength;
      let line = open.get(slice.stream);
      if (!line) open.set(slice.stream, (line = { bytes: 0, skipping: false }));
      if (line.skipping) {
        // The start of the cut line: keep what precedes it, up to its last newline.
        const start = slice.data.lastIndexOf(NEWLINE);
        if (start === -1) {
          if (scanned >= maxScan) return slices.reverse();
          continue;
        }
        slice = { ...slice, data: slice.data.subarray(0, start + 1) };
        line.skipping = false;
        line.bytes = 0;
      }
      slices.push(slice);
      const size = slice.data.byteLength;
      bytes += size;
      const found = countNewlines(slice.data);
      newlines += found;
      if (bytes >= wantBytes || newlines >= wantNewlines) return slices.reverse();
      line.bytes = found > 0 ? slice.data.indexOf(NEWLINE) : line.bytes + size;
      if (line.bytes > maxLineBytes) {
        // This slice holds the end of a line too long to keep whole: read past the rest of it
        // (a tail by bytes stops there instead: its bytes stay one contiguous piece).
        markOldest();
        if (options.bytes !== undefined) return slices.reverse();
        line.skipping = true;
      }
      if (scanned >= maxScan) {
        if (!line.skipping) markOldest();
        return slices.reverse();
      }
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
 * seq where they end; a last line without a newline is included. A line longer than
 * `maxLineBytes` (default 64 KiB) keeps its end and is marked `cut`, as is a line that goes on
 * at a slice with `cutBefore` (the tail left out part of it). Memory is bounded by the longest
 * line kept, not by the longest line in the output.
 */
export function toLines(slices: readonly OutputSlice[], maxLineBytes = DEFAULT_MAX_LINE_BYTES): LogLine[] {
  const cutter = new LineCutter(maxLineBytes);
  const lines: LogLine[] = [];
  for (const slice of slices) lines.push(...cutter.push(slice));
  lines.push(...cutter.flush());
  return lines.sort((a, b) => a.seq - b.seq);
}

/**
 * The incremental form of `toLines`: `push` a slice, get the lines it completes; `flush` at the
 * end gets each stream's unfinished last line. Cuts exactly as `toLines` does (which uses it).
 */
export class LineCutter {
  readonly #maxLineBytes: number;
  readonly #open = new Map<OutputStream, { decoder: InstanceType<typeof TextDecoder>; text: string; cut: boolean; seq: number }>();

  constructor(maxLineBytes = DEFAULT_MAX_LINE_BYTES) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** The lines `slice` completes, in order (all with the slice's seq). */
  push(slice: Pick<OutputSlice, 'stream' | 'seq' | 'data' | 'cutBefore'>): LogLine[] {
    const lines: LogLine[] = [];
    let state = this.#open.get(slice.stream);
    if (!state) this.#open.set(slice.stream, (state = { decoder: new TextDecoder('utf-8'), text: '', cut: slice.cutBefore === true, seq: slice.seq }));
    else if (slice.cutBefore) {
      // The middle of a long line was left out here: what follows is the end of that line.
      const rest = state.text + state.decoder.decode();
      if (rest !== '') lines.push(this.#line(slice.stream, slice.seq, rest, state.cut));
      this.#open.set(slice.stream, (state = { decoder: new TextDecoder('utf-8'), text: '', cut: true, seq: slice.seq }));
    }
    state.seq = slice.seq;
    const text = state.text + state.decoder.decode(slice.data, { stream: true });
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      lines.push(this.#line(slice.stream, slice.seq, text.slice(start, nl), state.cut));
      state.cut = false;
      start = nl + 1;
    }
    state.text = text.slice(start);
    // An unfinished line longer than the limit keeps only its end (it is read to its end anyway).
    if (state.text.length > this.#maxLineBytes) {
      state.text = keepEnd(state.text, this.#maxLineBytes);
      state.cut = true;
    }
    return lines;
  }

  /** Each stream's unfinished last line (with the seq of that stream's last slice), by seq; the cutter is empty after. */
  flush(): LogLine[] {
    const lines: LogLine[] = [];
    for (const [stream, state] of this.#open) {
      const rest = state.text + state.decoder.decode();
      if (rest !== '') lines.push(this.#line(stream, state.seq, rest, state.cut));
    }
    this.#open.clear();
    return lines.sort((a, b) => a.seq - b.seq);
  }

  #line(stream: OutputStream, seq: number, text: string, cut: boolean): LogLine {
    let line = stripCr(text);
    // A complete line longer than the limit (within one slice) is cut the same way.
    if (line.length > this.#maxLineBytes) {
      line = keepEnd(line, this.#maxLineBytes);
      cut = true;
    }
    return cut ? { stream, seq, line, cut: true } : { stream, seq, line };
  }
}

/** The last `n` UTF-16 units of `text`, not starting inside a surrogate pair. */
function keepEnd(text: string, n: number): string {
  let start = text.length - n;
  const code = text.charCodeAt(start);
  if (code >= 0xdc00 && code <= 0xdfff) start++;
  return text.slice(start);
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
