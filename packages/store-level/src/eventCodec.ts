import { TetherError, type ExecutionEvent, type OutputStream, type StoredEvent } from '@tether/core';
import { eventKey, readU64 } from './keys.js';

// An event is one LevelDB entry. Its key is the stream's event prefix and the seq (see keys.ts),
// followed by a tag, for output the stream byte, and the timestamp as a float64:
//   output:  prefix u64 seq  0x01 streamByte f64 ts   value: the output bytes, exactly as produced
//   other:   prefix u64 seq  0x02 f64 ts              value: `{ type, data }` as UTF-8 JSON
// Keeping the metadata in the key lets the value of an output event be the caller's bytes
// themselves: never copied into a header, never base64- or JSON-escaped.

const OUTPUT = 1;
const JSON_EVENT = 2;
const OUTPUT_STREAMS: readonly OutputStream[] = ['stdout', 'stderr', 'pty'];

export interface EncodedEvent {
  readonly key: Buffer;
  readonly value: Uint8Array;
}

export function encodeEvent(prefix: Buffer, event: StoredEvent): EncodedEvent {
  const base = eventKey(prefix, event.seq);
  if (event.type === 'OutputProduced') {
    const key = Buffer.allocUnsafe(base.length + 10);
    base.copy(key, 0);
    key[base.length] = OUTPUT;
    key[base.length + 1] = OUTPUT_STREAMS.indexOf(event.data.stream);
    key.writeDoubleBE(event.ts, base.length + 2);
    return { key, value: event.data.data };
  }
  const key = Buffer.allocUnsafe(base.length + 9);
  base.copy(key, 0);
  key[base.length] = JSON_EVENT;
  key.writeDoubleBE(event.ts, base.length + 1);
  return { key, value: Buffer.from(JSON.stringify({ type: event.type, data: event.data }), 'utf8') };
}

export function decodeEvent(key: Uint8Array, value: Uint8Array): StoredEvent {
  const view = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const at = 3 + view.readUInt16BE(1) + 8;
  const seq = readU64(key, at - 8);
  const tag = view[at];
  if (tag === OUTPUT && view.length === at + 10) {
    const stream = OUTPUT_STREAMS[view[at + 1] ?? -1];
    if (stream !== undefined) {
      // A plain Uint8Array, as appended (LevelDB hands back Buffers).
      const data = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      return { type: 'OutputProduced', data: { stream, data }, seq, ts: view.readDoubleBE(at + 2) };
    }
  } else if (tag === JSON_EVENT && view.length === at + 9) {
    const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
    return { ...(JSON.parse(text) as ExecutionEvent), seq, ts: view.readDoubleBE(at + 1) } as StoredEvent;
  }
  throw new TetherError('STORE_CORRUPT', `event ${seq} has an unknown encoding (tag ${String(tag)})`);
}
