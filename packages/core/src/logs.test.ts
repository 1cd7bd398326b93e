import { describe, expect, it } from 'vitest';
import type { ExecutionEvent, StoredEvent } from './events.js';
import type { EventStore, ReadOptions } from './eventStore.js';
import { InMemoryEventStore } from './inMemoryEventStore.js';
import { lastBytes, readOutputTail, toLines, type OutputSlice } from './logs.js';

const enc = new TextEncoder();
const slice = (seq: number, text: string | Uint8Array, stream: 'stdout' | 'stderr' = 'stdout'): OutputSlice => ({
  stream,
  seq,
  ts: seq,
  data: typeof text === 'string' ? enc.encode(text) : text,
});

describe('toLines', () => {
  it('splits per stream, joins a character split across chunks, strips CR, keeps a last partial line', () => {
    const euro = enc.encode('€');
    const lines = toLines([
      slice(1, 'a1\r\nb'),
      slice(2, 'err1\n', 'stderr'),
      slice(3, 'cont\n'),
      slice(4, euro.subarray(0, 2)),
      slice(5, euro.subarray(2)),
      slice(6, ' tail'),
    ]);
    expect(lines).toEqual([
      { stream: 'stdout', seq: 1, line: 'a1' },
      { stream: 'stderr', seq: 2, line: 'err1' },
      { stream: 'stdout', seq: 3, line: 'bcont' },
      { stream: 'stdout', seq: 6, line: '€ tail' },
    ]);
  });

  it('keeps the last bytes across slices', () => {
    const kept = lastBytes([slice(1, 'abc'), slice(2, 'defg')], 5);
    expect(kept.map((s) => new TextDecoder().decode(s.data))).toEqual(['c', 'defg']);
  });
});

describe('readOutputTail', () => {
  /** Counts how many events the store hands out, to show the tail's cost does not grow with the stream. */
  function counting(store: EventStore): { store: EventStore; served: () => number } {
    let served = 0;
    const wrapped = Object.create(store) as EventStore;
    wrapped.read = async (stream: string, options?: ReadOptions) => {
      const events = await store.read(stream, options);
      served += events.length;
      return events;
    };
    return { store: wrapped, served: () => served };
  }

  async function execution(store: EventStore, id: string, chunks: number): Promise<void> {
    const events: ExecutionEvent[] = [
      { type: 'ExecutionRequested', data: { spec: { command: 'x', envMode: 'merge', stdin: false, killGraceMs: 0 } } },
    ];
    for (let i = 0; i < chunks; i++) {
      const text = Array.from({ length: 10 }, (_, j) => `line ${i * 10 + j}`).join('\n') + '\n';
      events.push({ type: 'OutputProduced', data: { stream: i % 5 === 4 ? 'stderr' : 'stdout', data: enc.encode(text) } });
    }
    await store.append(id, events);
  }

  it('returns the last lines and reads the same amount for a small and a large execution', async () => {
    const memory = new InMemoryEventStore();
    await execution(memory, 'small', 1_000);
    await execution(memory, 'large', 20_000);
    const small = counting(memory);
    const large = counting(memory);
    const smallTail = toLines(await readOutputTail(small.store, 'small', { lines: 30 })).slice(-30);
    const largeTail = toLines(await readOutputTail(large.store, 'large', { lines: 30 })).slice(-30);
    expect(largeTail.at(-1)).toMatchObject({ line: 'line 199989' }); // the last stdout chunk is 19998
    expect(largeTail).toHaveLength(30);
    expect(smallTail).toHaveLength(30);
    expect(large.served()).toBe(small.served());
    await memory.close();
  });

  it('stops at since/afterSeq and honours the stream filter', async () => {
    const memory = new InMemoryEventStore();
    await execution(memory, 'x', 10);
    const stderr = await readOutputTail(memory, 'x', { streams: ['stderr'], lines: 1000 });
    expect(stderr.map((s) => s.seq)).toEqual([6, 11]);
    const after = await readOutputTail(memory, 'x', { lines: 1000, afterSeq: 8 });
    expect(after.map((s) => s.seq)).toEqual([9, 10]);
    await memory.close();
  });
});

describe('a tail of long lines', () => {
  const MiB = 1024 * 1024;
  function counting(store: EventStore): { store: EventStore; bytes: () => number } {
    let bytes = 0;
    const wrapped = Object.create(store) as EventStore;
    wrapped.read = async (stream: string, options?: ReadOptions) => {
      const events = await store.read(stream, options);
      for (const e of events) if (e.type === 'OutputProduced') bytes += e.data.data.byteLength;
      return events;
    };
    return { store: wrapped, bytes: () => bytes };
  }
  async function oneLine(store: EventStore, id: string, mib: number, after = ''): Promise<void> {
    const events: ExecutionEvent[] = [{ type: 'ExecutionRequested', data: { spec: { command: 'x', envMode: 'merge', stdin: false, killGraceMs: 0 } } }];
    events.push({ type: 'OutputProduced', data: { stream: 'stdout', data: enc.encode('before\n') } });
    const chunk = new Uint8Array(MiB).fill(0x61);
    for (let i = 0; i < mib; i++) events.push({ type: 'OutputProduced', data: { stream: 'stdout', data: chunk } });
    if (after) events.push({ type: 'OutputProduced', data: { stream: 'stdout', data: enc.encode(after) } });
    await store.append(id, events);
  }

  it('reads at most the scan budget of a 200 MiB line without a newline, and returns its end marked cut', async () => {
    const memory = new InMemoryEventStore();
    await oneLine(memory, 'big', 200);
    const read = counting(memory);
    const lines = toLines(await readOutputTail(read.store, 'big', { lines: 2 })).slice(-2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ stream: 'stdout', cut: true });
    expect(lines[0]!.line).toBe('a'.repeat(64 * 1024));
    expect(read.bytes()).toBeLessThanOrEqual(17 * MiB); // the 16 MiB budget and a page, not 200 MiB
    await memory.close();
  });

  it('stops at a long line further back than its budget: the lines after it whole, that line cut', async () => {
    const memory = new InMemoryEventStore();
    await oneLine(memory, 'mid', 50, '\nlast one\n');
    const read = counting(memory);
    const lines = toLines(await readOutputTail(read.store, 'mid', { lines: 3 })).slice(-3);
    expect(lines.map((l) => [l.line.length, l.cut])).toEqual([
      [64 * 1024, true],
      ['last one'.length, undefined],
    ]);
    expect(read.bytes()).toBeLessThanOrEqual(17 * MiB);
    await memory.close();
  });

  it('goes on past a long line within its budget: the lines before it, that line as its cut end, the lines after', async () => {
    const memory = new InMemoryEventStore();
    const events: ExecutionEvent[] = [{ type: 'ExecutionRequested', data: { spec: { command: 'x', envMode: 'merge', stdin: false, killGraceMs: 0 } } }];
    const out = (text: string | Uint8Array, stream: 'stdout' | 'stderr' = 'stdout'): ExecutionEvent => ({
      type: 'OutputProduced',
      data: { stream, data: typeof text === 'string' ? enc.encode(text) : text },
    });
    events.push(out('first\nsecond\nstart of the long line '));
    events.push(out('an error\n', 'stderr'));
    for (let i = 0; i < 10; i++) events.push(out(new Uint8Array(MiB).fill(0x62)));
    events.push(out('END\nafter\n'));
    events.push(out('short\n'), out('x'.repeat(70 * 1024) + '\nlast'));
    await memory.append('long', events);
    const read = counting(memory);
    const lines = toLines(await readOutputTail(read.store, 'long', { streams: ['stdout', 'stderr'], lines: 100 }));
    expect(lines.map((l) => [l.stream, l.line.length > 40 ? `${l.line.slice(0, 3)}…${l.line.slice(-3)} ${l.line.length}` : l.line, l.cut])).toEqual([
      ['stdout', 'first', undefined],
      ['stdout', 'second', undefined],
      ['stderr', 'an error', undefined],
      ['stdout', `bbb…END ${64 * 1024}`, true],
      ['stdout', 'after', undefined],
      ['stdout', 'short', undefined],
      ['stdout', `xxx…xxx ${64 * 1024}`, true],
      ['stdout', 'last', undefined],
    ]);
    expect(read.bytes()).toBeLessThanOrEqual(11 * MiB);
    // A tail by lines counts the cut line as one line.
    const five = toLines(await readOutputTail(memory, 'long', { lines: 5 })).slice(-5);
    expect(five.map((l) => l.line.slice(-5))).toEqual(['bbEND', 'after', 'short', 'xxxxx', 'last']);
    // A tail by bytes stays contiguous: it stops at the first long line (the 70 KiB one).
    const bytes = await readOutputTail(memory, 'long', { bytes: 4 * MiB });
    expect(toLines(bytes).map((l) => [l.line.length, l.cut])).toEqual([
      [64 * 1024, true],
      [4, undefined],
    ]);
    expect(bytes[0]!.cutBefore).toBe(true);
    await memory.close();
  });

  it('toLines cuts a complete line longer than the limit to its end', () => {
    const lines = toLines([slice(1, `${'x'.repeat(10)}END\nok\n`)], 5);
    expect(lines).toEqual([
      { stream: 'stdout', seq: 1, line: 'x'.repeat(2) + 'END', cut: true },
      { stream: 'stdout', seq: 1, line: 'ok' },
    ]);
  });
});

export type { StoredEvent };
