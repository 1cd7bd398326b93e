import { isTerminal, type ExecutionEvent } from '@tether/core';

/** Where an execution stands against its output cap. */
export interface CapPosition {
  /** Output bytes recorded so far (all streams). */
  readonly recordedBytes: number;
  /** An OutputTruncated has already been written for this execution. */
  readonly truncating: boolean;
  /** Bytes dropped since the last OutputTruncated, not yet reported. */
  readonly pendingDropped: number;
}

export interface CappedAppend {
  /** The events to write: output cut to the cap, OutputTruncated added where due. */
  readonly events: ExecutionEvent[];
  readonly pendingDropped: number;
}

/**
 * Applies the per-execution output cap to one append. Output past the cap is dropped (the chunk
 * that crosses it is kept up to the cap). The first drop appends an `OutputTruncated` at once;
 * later drops are counted and reported by one more `OutputTruncated` just before the terminal
 * event, so the fold's `truncatedBytes` always equals every byte dropped.
 */
export function applyOutputCap(events: readonly ExecutionEvent[], position: CapPosition, limitBytes: number): CappedAppend {
  let recorded = position.recordedBytes;
  let truncating = position.truncating;
  let pendingDropped = position.pendingDropped;
  const out: ExecutionEvent[] = [];
  for (const event of events) {
    if (event.type === 'OutputProduced') {
      const bytes = event.data.data;
      const room = Math.max(0, limitBytes - recorded);
      if (bytes.byteLength <= room) {
        out.push(event);
        recorded += bytes.byteLength;
        continue;
      }
      if (room > 0) {
        out.push({ type: 'OutputProduced', data: { stream: event.data.stream, data: bytes.subarray(0, room) } });
        recorded += room;
      }
      const dropped = bytes.byteLength - room;
      if (truncating) {
        pendingDropped += dropped;
      } else {
        truncating = true;
        out.push({ type: 'OutputTruncated', data: { droppedBytes: dropped, limitBytes } });
      }
      continue;
    }
    if (isTerminal(event) && pendingDropped > 0) {
      out.push({ type: 'OutputTruncated', data: { droppedBytes: pendingDropped, limitBytes } });
      pendingDropped = 0;
    }
    out.push(event);
  }
  return { events: out, pendingDropped };
}
