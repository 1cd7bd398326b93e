import { describe, expect, it } from 'vitest';
import type { ExecutionEvent, StoredEvent } from './events.js';
import { durationMs, foldEvents } from './state.js';

const spec = { command: 'x', envMode: 'merge', stdin: false, killGraceMs: 3000 } as const;
const stored = (events: ExecutionEvent[]): StoredEvent[] => events.map((e, i) => ({ ...e, seq: i + 1, ts: 1000 + i * 10 }) as StoredEvent);
const fold = (...events: ExecutionEvent[]) => foldEvents('e1', stored(events));
const requested: ExecutionEvent = { type: 'ExecutionRequested', data: { spec } };
const started: ExecutionEvent = { type: 'ExecutionStarted', data: { pid: 10, pgid: 10, tty: false } };
const exited = (exitCode: number | null, signal: string | null = null): ExecutionEvent => ({
  type: 'ExecutionExited',
  data: { exitCode, signal, survivors: [] },
});
const signalSent = (reason: 'user' | 'cancel' | 'timeout', signal = 'SIGTERM'): ExecutionEvent => ({ type: 'SignalSent', data: { signal, reason } });

describe('evolve', () => {
  it('starts queued, runs, and counts output per stream', () => {
    expect(fold(requested)).toMatchObject({ status: 'queued', requestedAt: 1000, spec, lastSeq: 1 });
    const state = fold(
      requested,
      started,
      { type: 'OutputProduced', data: { stream: 'stdout', data: new Uint8Array(5) } },
      { type: 'OutputProduced', data: { stream: 'stderr', data: new Uint8Array(2) } },
      { type: 'InputWritten', data: { bytes: 7, eof: false } },
      { type: 'InputWritten', data: { bytes: 0, eof: true } },
    );
    expect(state).toMatchObject({
      status: 'running',
      pid: 10,
      pgid: 10,
      startedAt: 1010,
      bytes: { stdout: 5, stderr: 2, pty: 0 },
      stdinBytes: 7,
      stdinClosed: true,
      endReason: null,
      lastSeq: 6,
    });
  });

  it('ends as exited with the exit code', () => {
    const state = fold(requested, started, exited(3));
    expect(state).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 3, signal: null, finishedAt: 1020 });
    expect(durationMs(state)).toBe(10);
  });

  it('ends as signaled when a signal killed it and nobody asked to stop it', () => {
    expect(fold(requested, started, signalSent('user', 'SIGINT'), exited(null, 'SIGINT'))).toMatchObject({
      endReason: 'signaled',
      signal: 'SIGINT',
    });
  });

  it('ends as cancelled after a cancel, even if the process exited by itself on TERM', () => {
    expect(fold(requested, started, signalSent('cancel'), exited(143))).toMatchObject({ endReason: 'cancelled', exitCode: 143 });
    expect(fold(requested, started, signalSent('cancel'), signalSent('cancel', 'SIGKILL'), exited(null, 'SIGKILL'))).toMatchObject({
      endReason: 'cancelled',
    });
  });

  it('ends as timed_out after a timeout, and a later cancel does not change that', () => {
    expect(fold(requested, started, signalSent('timeout'), signalSent('cancel', 'SIGKILL'), exited(null, 'SIGKILL'))).toMatchObject({
      endReason: 'timed_out',
    });
  });

  it('ends as failed_to_start with the errno', () => {
    const state = fold(requested, { type: 'ExecutionFailed', data: { code: 'ENOENT', message: 'spawn nope ENOENT' } });
    expect(state).toMatchObject({
      status: 'finished',
      endReason: 'failed_to_start',
      error: { code: 'ENOENT', message: 'spawn nope ENOENT' },
      pid: null,
      exitCode: null,
    });
  });

  it('ends as cancelled when cancelled before it started', () => {
    expect(fold(requested, { type: 'ExecutionFailed', data: { code: 'CANCELLED', message: 'cancelled while queued' } })).toMatchObject({
      endReason: 'cancelled',
    });
  });

  it('ends as lost when the daemon restarted under it', () => {
    expect(fold(requested, started, { type: 'ExecutionLost', data: { reason: 'daemon restarted' } })).toMatchObject({
      status: 'finished',
      endReason: 'lost',
      error: { code: 'LOST', message: 'daemon restarted' },
    });
  });

  it('sums truncated output and keeps survivors', () => {
    const state = fold(
      requested,
      started,
      { type: 'OutputTruncated', data: { droppedBytes: 10, limitBytes: 100 } },
      { type: 'OutputTruncated', data: { droppedBytes: 5, limitBytes: 100 } },
      { type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [99] } },
    );
    expect(state).toMatchObject({ truncatedBytes: 15, survivors: [99], endReason: 'exited' });
  });
});
