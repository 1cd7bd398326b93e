import type { ExecutionStatus } from '@tether/core';

// The key layout of a tether store (all keys are raw bytes, compared bytewise by LevelDB):
//
//   0x00 'format'                               format/version marker (JSON)
//   0x00 'sync'                                 written only to force an fsync when idle (empty)
//   0x01 name                                   the stream's folded state snapshot (JSON)
//   0x02 u64 (MAX - requestedAt) name           list index, newest request first
//   0x03 statusByte u64 (MAX - requestedAt) name  the same, per status
//   'E' u16 nameLength name  u64 seq  …         one event (metadata follows the seq: eventCodec.ts);
//                                               a stream's events are contiguous and seq-ordered
//
// The stream name is length-prefixed in event keys so that no stream's key range can contain
// another's ("a" vs "a\0…"); seqs are fixed-width big-endian so byte order is seq order.
//
// Every key that is ever rewritten sorts before all event keys. Output is appended at the end
// of a stream's range; if a rewritten key sorted after it, every table file holding that key
// would span the range where new output lands, and LevelDB would have to merge all new output
// into it at every level instead of moving its table files down untouched.

const EVENT = 0x45; // 'E'
const STATE = 0x01;
const INDEX = 0x02;
const STATUS_INDEX = 0x03;

/** One past the largest seq (and request time) a key can hold. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

export const FORMAT_KEY: Uint8Array = Buffer.from('\u0000format');
export const SYNC_KEY: Uint8Array = Buffer.from('\u0000sync');

const STATUS_BYTES: Record<ExecutionStatus, number> = { queued: 0x71, running: 0x72, finished: 0x66 };

function writeU64(target: Buffer, value: number, offset: number): void {
  target.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset);
  target.writeUInt32BE(value % 0x1_0000_0000, offset + 4);
}

export function readU64(source: Uint8Array, offset: number): number {
  const view = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  return view.readUInt32BE(offset) * 0x1_0000_0000 + view.readUInt32BE(offset + 4);
}

/** The prefix shared by every event key of `stream`. */
export function eventPrefix(stream: string): Buffer {
  const name = Buffer.from(stream, 'utf8');
  const prefix = Buffer.allocUnsafe(3 + name.length);
  prefix[0] = EVENT;
  prefix.writeUInt16BE(name.length, 1);
  name.copy(prefix, 3);
  return prefix;
}

/** The start of the keys of event `seq` (its full key continues with the event's metadata). */
export function eventKey(prefix: Buffer, seq: number): Buffer {
  const key = Buffer.allocUnsafe(prefix.length + 8);
  prefix.copy(key, 0);
  writeU64(key, seq, prefix.length);
  return key;
}

export function stateKey(stream: string): Buffer {
  return Buffer.concat([Buffer.of(STATE), Buffer.from(stream, 'utf8')]);
}

function inverted(requestedAt: number | null): number {
  return MAX_SEQ - Math.max(0, Math.min(MAX_SEQ, requestedAt ?? 0));
}

/** The prefix of the list index: all executions, or those in one status. */
export function indexPrefix(status?: ExecutionStatus): Buffer {
  return status === undefined ? Buffer.of(INDEX) : Buffer.of(STATUS_INDEX, STATUS_BYTES[status]);
}

/** The index key of an execution under `prefix` (from {@link indexPrefix}). */
export function indexKey(prefix: Buffer, requestedAt: number | null, stream: string): Buffer {
  const name = Buffer.from(stream, 'utf8');
  const key = Buffer.allocUnsafe(prefix.length + 8 + name.length);
  prefix.copy(key, 0);
  writeU64(key, inverted(requestedAt), prefix.length);
  name.copy(key, prefix.length + 8);
  return key;
}

export function requestedAtOfIndexKey(prefix: Buffer, key: Uint8Array): number {
  return MAX_SEQ - readU64(key, prefix.length);
}

export function streamOfIndexKey(prefix: Buffer, key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset + prefix.length + 8, key.byteLength - prefix.length - 8).toString('utf8');
}

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  throw new RangeError('a prefix of 0xff bytes has no end');
}
