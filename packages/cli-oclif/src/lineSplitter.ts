import type { OutputStream } from '@tether/core';

/** A line of output as the contract prints it (`pty` output is reported as stdout). */
export interface LogRecord {
  readonly type: 'log';
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
  /** Seq of the event holding the line's last byte. */
  readonly seq: number;
  /**
   * Present (true) on a piece of a line longer than the splitter's limit: the line goes on in
   * the next record of the same stream; the record that ends it has no `partial`.
   */
  readonly partial?: true;
}

/** Pieces of a longer line are at most this many characters (UTF-16 units). */
export const MAX_LINE_PIECE = 64 * 1024;

/**
 * Cuts streamed output into lines, each stream on its own (a stdout line is never glued to a
 * stderr one); a UTF-8 character split across chunks decodes whole; `\r\n` counts as one end.
 * A line longer than `maxPiece` is given out in pieces marked `partial` as it comes, so memory
 * stays bounded whatever the length of a line (200 MiB without a newline included).
 */
export class LineSplitter {
  readonly #open = new Map<'stdout' | 'stderr', { decoder: InstanceType<typeof TextDecoder>; text: string; seq: number }>();
  readonly #maxPiece: number;

  constructor(maxPiece = MAX_LINE_PIECE) {
    this.#maxPiece = maxPiece;
  }

  /** The complete lines (and pieces of overlong ones) that `data` finishes. */
  push(stream: OutputStream, data: Uint8Array, seq: number): LogRecord[] {
    const name = stream === 'stderr' ? 'stderr' : 'stdout';
    let state = this.#open.get(name);
    if (!state) this.#open.set(name, (state = { decoder: new TextDecoder('utf-8'), text: '', seq }));
    const text = state.text + state.decoder.decode(data, { stream: true });
    state.seq = seq;
    const records: LogRecord[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      records.push(...this.#pieces(name, text.slice(start, nl), seq, true));
      start = nl + 1;
    }
    state.text = text.slice(start);
    if (state.text.length > this.#maxPiece) {
      // Give out the full pieces now and keep only the rest, shorter than a piece.
      const pieces = this.#pieces(name, state.text, seq, false);
      state.text = pieces.pop()!.line;
      records.push(...pieces);
    }
    return records;
  }

  /** What is left without a final newline, as lines (at the end of the output, or when stopping early). */
  flush(): LogRecord[] {
    const records: LogRecord[] = [];
    for (const [stream, state] of this.#open) {
      const rest = state.text + state.decoder.decode();
      if (rest !== '') records.push(...this.#pieces(stream, rest, state.seq, true));
      state.text = '';
    }
    return records.sort((a, b) => a.seq - b.seq);
  }

  /** `text` in records of at most `maxPiece`; all but the last are `partial`, and so is the last unless `ends`. */
  #pieces(stream: 'stdout' | 'stderr', text: string, seq: number, ends: boolean): LogRecord[] {
    const line = ends ? stripCr(text) : text;
    if (line.length <= this.#maxPiece) return [{ type: 'log', stream, line, seq }];
    const records: LogRecord[] = [];
    let start = 0;
    while (line.length - start > this.#maxPiece) {
      let end = start + this.#maxPiece;
      const code = line.charCodeAt(end - 1);
      if (code >= 0xd800 && code <= 0xdbff) end--;
      records.push({ type: 'log', stream, line: line.slice(start, end), seq, partial: true });
      start = end;
    }
    records.push({ type: 'log', stream, line: line.slice(start), seq });
    return records;
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
