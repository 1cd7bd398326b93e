// The framing between a daemon and an execution's supervisor, over the supervisor's Unix socket.
// A frame is [u32 length of the rest][u32 length of the JSON header][JSON header][raw payload]:
// control messages are the header alone; output and stdin bytes travel raw in the payload.

/** Largest frame either side accepts (a header is small; payloads are output chunks or writes). */
export const MAX_FRAME_BYTES = 17 * 1024 * 1024;

export interface Frame {
  readonly header: Record<string, unknown> & { readonly t: string };
  readonly payload: Buffer;
}

export function encodeFrame(header: { readonly t: string } & Record<string, unknown>, payload?: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const size = payload?.byteLength ?? 0;
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(4 + json.byteLength + size, 0);
  head.writeUInt32BE(json.byteLength, 4);
  return size > 0 ? Buffer.concat([head, json, payload!]) : Buffer.concat([head, json]);
}

/**
 * Writes a frame without copying its payload, which may come in parts (chunks sent together):
 * one writev when corked. `written` is called once the socket has taken all of it.
 */
export function writeFrame(
  socket: { cork(): void; uncork(): void; write(data: Uint8Array, done?: () => void): boolean },
  header: { readonly t: string } & Record<string, unknown>,
  payload: readonly Uint8Array[],
  written?: () => void,
): void {
  const json = Buffer.from(JSON.stringify(header));
  let size = 0;
  for (const part of payload) size += part.byteLength;
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(4 + json.byteLength + size, 0);
  head.writeUInt32BE(json.byteLength, 4);
  socket.cork();
  socket.write(Buffer.concat([head, json]));
  payload.forEach((part, index) => socket.write(part, index === payload.length - 1 ? written : undefined));
  socket.uncork();
}

/** Cuts a byte stream into frames; a malformed or oversized frame is an error (the peer is dropped). */
export class FrameReader {
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  /** Returns the complete frames in `data` (and what came before it). Throws on a malformed frame. */
  push(data: Buffer): Frame[] {
    this.#pending.push(data);
    this.#pendingBytes += data.byteLength;
    const frames: Frame[] = [];
    // A large frame arrives in many reads: join them only once it is complete.
    if (this.#pending.length > 1 && this.#pendingBytes < this.#needed()) return frames;
    let buffer = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    let at = 0;
    while (buffer.byteLength - at >= 4) {
      const length = checkedLength(buffer.readUInt32BE(at));
      if (buffer.byteLength - at - 4 < length) break;
      frames.push(parseFrame(buffer.subarray(at + 4, at + 4 + length)));
      at += 4 + length;
    }
    buffer = buffer.subarray(at);
    this.#pending = buffer.byteLength > 0 ? [buffer] : [];
    this.#pendingBytes = buffer.byteLength;
    return frames;
  }

  /** Bytes the first pending frame needs in all (4 while its length is not known yet). */
  #needed(): number {
    const first = this.#pending[0]!;
    if (first.byteLength < 4) return 4;
    return 4 + checkedLength(first.readUInt32BE(0));
  }
}

/**
 * Reads frames for a socket's `onread` (`buffer: () => reader.buffer()`, `callback: (n) =>
 * reader.read(n)`): the length of each frame is read first, then the rest of it straight into a
 * buffer of its own, so a large frame costs one allocation and no copy (no 64 KiB read buffers to
 * join). A payload is a view of its frame's buffer. A malformed or oversized frame is an error.
 */
export class FrameBuffers {
  readonly #length = Buffer.allocUnsafe(4);
  /** The frame being read once its length is known (without the length), else null. */
  #frame: Buffer | null = null;
  #filled = 0;

  /** Where the next read goes. */
  buffer(): Buffer {
    return this.#frame ? this.#frame.subarray(this.#filled) : this.#length.subarray(this.#filled);
  }

  /** `n` bytes were read into the last `buffer()`: the frame they completed, if any. Throws on a malformed frame. */
  read(n: number): Frame | null {
    this.#filled += n;
    if (!this.#frame) {
      if (this.#filled < 4) return null;
      this.#frame = Buffer.allocUnsafe(checkedLength(this.#length.readUInt32BE(0)));
      this.#filled = 0;
      return null;
    }
    const frame = this.#frame;
    if (this.#filled < frame.byteLength) return null;
    this.#frame = null;
    this.#filled = 0;
    return parseFrame(frame);
  }
}

/** A frame's length (what follows its 4 length bytes), checked against the bounds. */
function checkedLength(length: number): number {
  if (length < 4 || length > MAX_FRAME_BYTES) throw new Error(`bad frame length ${length}`);
  return length;
}

/** A frame from what follows its length: `[u32 header length][JSON header][payload]` (a view, not a copy). */
function parseFrame(body: Buffer): Frame {
  const headerLength = body.readUInt32BE(0);
  if (headerLength > body.byteLength - 4) throw new Error('bad frame header length');
  const header = JSON.parse(body.toString('utf8', 4, 4 + headerLength)) as Frame['header'];
  if (typeof header !== 'object' || header === null || typeof header.t !== 'string') throw new Error('bad frame header');
  return { header, payload: body.subarray(4 + headerLength) };
}

/** Output streams by number, as they travel in frames and in the spool. */
export const STREAMS = ['stdout', 'stderr', 'pty'] as const;
export type StreamName = (typeof STREAMS)[number];
