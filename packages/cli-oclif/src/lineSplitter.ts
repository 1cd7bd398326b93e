import type { OutputStream } from '@tether/core';

/** A line of output as the contract prints it (`pty` output is reported as stdout). */
export interface LogRecord {
  readonly type: 'log';
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
  /** Seq of the event holding the line's last byte. */
  readonly seq: number;
}

/**
 * Cuts streamed output into lines, each stream on its own (a stdout line is never glued to a
 * stderr one); a UTF-8 character split across chunks decodes whole; `\r\n` counts as one end.
 */
export class LineSplitter {
  readonly #open = new Map<'stdout' | 'stderr', { decoder: InstanceType<typeof TextDecoder>; text: string; seq: number }>();

  /** The complete lines that `data` finishes. */
  push(stream: OutputStream, data: Uint8Array, seq: number): LogRecord[] {
    const name = stream === 'stderr' ? 'stderr' : 'stdout';
    let state = this.#open.get(name);
    if (!state) this.#open.set(name, (state = { decoder: new TextDecoder('utf-8'), text: '', seq }));
    const text = state.text + state.decoder.decode(data, { stream: true });
    state.seq = seq;
    const records: LogRecord[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      records.push({ type: 'log', stream: name, line: stripCr(text.slice(start, nl)), seq });
      start = nl + 1;
    }
    state.text = text.slice(start);
    return records;
  }

  /** What is left without a final newline, as lines (at the end of the output, or when stopping early). */
  flush(): LogRecord[] {
    const records: LogRecord[] = [];
    for (const [stream, state] of this.#open) {
      const rest = state.text + state.decoder.decode();
      if (rest !== '') records.push({ type: 'log', stream, line: stripCr(rest), seq: state.seq });
      state.text = '';
    }
    return records.sort((a, b) => a.seq - b.seq);
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
