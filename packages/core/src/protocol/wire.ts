import { z } from 'zod';
import { TetherError } from '../errors.js';
import { ExecutionEvent, type StoredEvent } from '../events.js';

// How events and bytes travel. Bytes inside JSON are base64. Output events of a follow travel as
// binary frames instead, so bulk output is neither base64-inflated nor JSON-escaped:
//
//   byte 0      frame kind (1 = an event of a followed execution)
//   bytes 1..4  length N of the JSON header, unsigned big-endian
//   N bytes     JSON header: { "subscription": "...", "event": { type, seq, ts, data: { stream } } }
//   the rest    the output bytes

export const FRAME_EVENT = 1;

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

/** An output event of a follow as one binary frame. */
export function encodeEventFrame(subscription: string, event: StoredEvent & { type: 'OutputProduced' }): Uint8Array {
  const header = Buffer.from(
    JSON.stringify({ subscription, event: { type: event.type, seq: event.seq, ts: event.ts, data: { stream: event.data.stream } } }),
  );
  const frame = Buffer.allocUnsafe(5 + header.byteLength + event.data.data.byteLength);
  frame[0] = FRAME_EVENT;
  frame.writeUInt32BE(header.byteLength, 1);
  header.copy(frame, 5);
  frame.set(event.data.data, 5 + header.byteLength);
  return frame;
}

/** Parses a binary event frame; fails with INVALID_ARGUMENT if it is malformed. */
export function decodeEventFrame(frame: Uint8Array): { subscription: string; event: StoredEvent } {
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (bytes.byteLength < 5 || bytes[0] !== FRAME_EVENT) throw new TetherError('INVALID_ARGUMENT', 'unknown binary frame');
  const length = bytes.readUInt32BE(1);
  if (5 + length > bytes.byteLength) throw new TetherError('INVALID_ARGUMENT', 'truncated binary frame');
  let header: { subscription?: unknown; event?: { data?: Record<string, unknown> } };
  try {
    header = JSON.parse(bytes.subarray(5, 5 + length).toString('utf8'));
  } catch {
    throw new TetherError('INVALID_ARGUMENT', 'malformed binary frame header');
  }
  if (typeof header.subscription !== 'string') throw new TetherError('INVALID_ARGUMENT', 'binary frame without subscription');
  const data = bytes.subarray(5 + length);
  const event = parseStoredEvent({ ...header.event, data: { ...header.event?.data, data } });
  return { subscription: header.subscription, event };
}
