import { z } from 'zod';
import { TetherError } from '../errors.js';
import { ExecutionEvent, type StoredEvent } from '../events.js';

// How events and bytes travel. Bytes inside JSON are base64. The events of a follow travel in
// binary frames instead, several at a time, so bulk output is neither base64-inflated nor
// JSON-escaped and small events do not each pay for a frame:
//
//   byte 0      frame kind (2 = events of a followed execution)
//   bytes 1..4  length N of the JSON header, unsigned big-endian
//   N bytes     JSON header: { "subscription": "...", "events": [ event, ... ] } where an
//               OutputProduced event's `data.data` is replaced by `data.bytes`, its length
//   the rest    the output bytes of those events, in order

export const FRAME_EVENTS = 2;

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** A stored event as JSON-safe data (output bytes as base64). */
export function eventToJson(event: StoredEvent): Record<string, unknown> {
  if (event.type !== 'OutputProduced') return event as unknown as Record<string, unknown>;
  return { ...event, data: { stream: event.data.stream, data: toBase64(event.data.data) } };
}

const StoredMeta = z.object({ seq: z.number().int().min(1), ts: z.number() });

/** Parses a stored event received as JSON; fails with INVALID_ARGUMENT if it is malformed. */
export function eventFromJson(json: unknown): StoredEvent {
  const raw = json as { type?: unknown; data?: { data?: unknown } } | null;
  const withBytes =
    raw?.type === 'OutputProduced' && typeof raw.data?.data === 'string' ? { ...raw, data: { ...raw.data, data: fromBase64(raw.data.data) } } : raw;
  return parseStoredEvent(withBytes);
}

function parseStoredEvent(candidate: unknown): StoredEvent {
  const event = ExecutionEvent.safeParse(candidate);
  const meta = StoredMeta.safeParse(candidate);
  if (!event.success || !meta.success) throw new TetherError('INVALID_ARGUMENT', 'malformed event from peer');
  return { ...event.data, seq: meta.data.seq, ts: meta.data.ts } as StoredEvent;
}

/** Events of a follow as one binary frame. */
export function encodeEventsFrame(subscription: string, events: readonly StoredEvent[]): Uint8Array {
  const payloads: Uint8Array[] = [];
  const described = events.map((event) => {
    if (event.type !== 'OutputProduced') return event;
    payloads.push(event.data.data);
    return { type: event.type, seq: event.seq, ts: event.ts, data: { stream: event.data.stream, bytes: event.data.data.byteLength } };
  });
  const header = Buffer.from(JSON.stringify({ subscription, events: described }));
  let size = 5 + header.byteLength;
  for (const payload of payloads) size += payload.byteLength;
  const frame = Buffer.allocUnsafe(size);
  frame[0] = FRAME_EVENTS;
  frame.writeUInt32BE(header.byteLength, 1);
  header.copy(frame, 5);
  let offset = 5 + header.byteLength;
  for (const payload of payloads) {
    frame.set(payload, offset);
    offset += payload.byteLength;
  }
  return frame;
}

/** Parses a binary events frame; fails with INVALID_ARGUMENT if it is malformed. */
export function decodeEventsFrame(frame: Uint8Array): { subscription: string; events: StoredEvent[] } {
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (bytes.byteLength < 5 || bytes[0] !== FRAME_EVENTS) throw new TetherError('INVALID_ARGUMENT', 'unknown binary frame');
  const length = bytes.readUInt32BE(1);
  if (5 + length > bytes.byteLength) throw new TetherError('INVALID_ARGUMENT', 'truncated binary frame');
  let header: { subscription?: unknown; events?: unknown };
  try {
    header = JSON.parse(bytes.subarray(5, 5 + length).toString('utf8'));
  } catch {
    throw new TetherError('INVALID_ARGUMENT', 'malformed binary frame header');
  }
  if (typeof header.subscription !== 'string' || !Array.isArray(header.events)) {
    throw new TetherError('INVALID_ARGUMENT', 'binary frame without subscription or events');
  }
  let offset = 5 + length;
  const events = header.events.map((described: { type?: unknown; data?: { bytes?: unknown } }) => {
    if (described?.type !== 'OutputProduced') return parseStoredEvent(described);
    const size = described.data?.bytes;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || offset + size > bytes.byteLength) {
      throw new TetherError('INVALID_ARGUMENT', 'binary frame with a bad output length');
    }
    const data = bytes.subarray(offset, offset + size);
    offset += size;
    return parseStoredEvent({ ...described, data: { ...described.data, data } });
  });
  if (offset !== bytes.byteLength) throw new TetherError('INVALID_ARGUMENT', 'binary frame with trailing bytes');
  return { subscription: header.subscription, events };
}
