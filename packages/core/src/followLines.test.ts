import { firstValueFrom, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { ExecutionEvent, OutputStream, StoredEvent } from './events.js';
import { followLines, outputLines } from './followLines.js';
import { InMemoryEventStore } from './inMemoryEventStore.js';
import { toLines } from './logs.js';
import type { LogLine } from './machine.js';

const enc = new TextEncoder();
const requested: ExecutionEvent = { type: 'ExecutionRequested', data: { spec: { command: 'x', envMode: 'merge', stdin: false, killGraceMs: 0 } } };
const out = (text: string | Uint8Array, stream: OutputStream = 'stdout'): ExecutionEvent => ({
  type: 'OutputProduced',
  data: { stream, data: typeof text === 'string' ? enc.encode(text) : text },
});
const exited: ExecutionEvent = { type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } };

/** An ExecApi's follow over a real in-memory store. */
function execOf(store: InMemoryEventStore) {
  return { follow: (id: string, afterSeq?: number) => store.follow(id, afterSeq) };
}

describe('followLines', () => {
  it('gives whole lines per stream, a character split across events whole, and flushes the partial last lines at the end', async () => {
    const store = new InMemoryEventStore();
    const euro = enc.encode('€');
    await store.append('x', [
      requested,
      out('a1\r\nb'),
      out('err', 'stderr'),
      out('cont\n'),
      out(euro.subarray(0, 1)),
      out(euro.subarray(1)),
      out(' no newline'),
      out(' partial', 'stderr'),
      exited,
    ]);
    const lines = await firstValueFrom(followLines(execOf(store), 'x').pipe(toArray()));
    expect(lines).toEqual([
      { stream: 'stdout', seq: 2, line: 'a1' },
      { stream: 'stdout', seq: 4, line: 'bcont' },
      { stream: 'stdout', seq: 7, line: '€ no newline' },
      { stream: 'stderr', seq: 8, line: 'err partial' },
    ]);
    const onlyStderr = await firstValueFrom(followLines(execOf(store), 'x', { streams: ['stderr'] }).pipe(toArray()));
    expect(onlyStderr).toEqual([{ stream: 'stderr', seq: 8, line: 'err partial' }]);
  });

  it('emits a line as soon as its newline is recorded, while the execution still runs', async () => {
    const store = new InMemoryEventStore();
    await store.append('live', [requested]);
    const seen: LogLine[] = [];
    let completed = false;
    const done = new Promise<void>((resolve, reject) => {
      followLines(execOf(store), 'live').subscribe({
        next: (line) => seen.push(line),
        error: reject,
        complete: () => {
          completed = true;
          resolve();
        },
      });
    });
    await store.append('live', [out('first li')]);
    await store.append('live', [out('ne\nsecond')]);
    await expect.poll(() => seen.map((l) => l.line)).toEqual(['first line']);
    expect(completed).toBe(false);
    await store.append('live', [out(' line\n'), out('tail'), exited]);
    await done;
    expect(seen.map((l) => l.line)).toEqual(['first line', 'second line', 'tail']);
  });

  it('cuts over-long lines exactly as toLines does, however the output was chunked', async () => {
    const max = 16;
    const text = `short\n${'x'.repeat(40)}\nmid ${'y'.repeat(30)}€z\n${'w'.repeat(50)}`;
    const bytes = enc.encode(text);
    for (const cuts of [[], [3], [1, 2, 3, 20, 21, 45], [10, 30, 50, 60, 62, 70, 90]]) {
      const store = new InMemoryEventStore();
      const pieces: Uint8Array[] = [];
      let from = 0;
      for (const at of [...cuts, bytes.byteLength]) {
        if (at > from && at <= bytes.byteLength) pieces.push(bytes.subarray(from, at));
        from = Math.max(from, at);
      }
      await store.append('long', [requested, ...pieces.map((p) => out(p)), exited]);
      const followed = await firstValueFrom(followLines(execOf(store), 'long', { maxLineBytes: max }).pipe(toArray()));
      const slices = (await store.read('long')).flatMap((e) => (e.type === 'OutputProduced' ? [{ stream: e.data.stream, seq: e.seq, ts: e.ts, data: e.data.data }] : []));
      expect(followed, `cuts ${cuts.join(',')}`).toEqual(toLines(slices, max));
      expect(followed.filter((l) => l.cut).map((l) => l.line)).toEqual(['x'.repeat(16), `${'y'.repeat(14)}€z`, 'w'.repeat(16)]);
    }
  });

  it('resumes after a seq', async () => {
    const store = new InMemoryEventStore();
    await store.append('r', [requested, out('one\n'), out('two\n'), out('three\n'), exited]);
    const lines = await firstValueFrom(followLines(execOf(store), 'r', { afterSeq: 2 }).pipe(toArray()));
    expect(lines.map((l) => [l.seq, l.line])).toEqual([
      [3, 'two'],
      [4, 'three'],
    ]);
  });

  it('passes an error on without flushing the unfinished line', async () => {
    const events = new Subject<StoredEvent>();
    const seen: LogLine[] = [];
    const failure = new Promise<unknown>((resolve) => events.pipe(outputLines()).subscribe({ next: (l) => seen.push(l), error: resolve }));
    events.next({ type: 'OutputProduced', data: { stream: 'stdout', data: enc.encode('done\nhalf') }, seq: 1, ts: 1 });
    events.error(new Error('gone'));
    expect(((await failure) as Error).message).toBe('gone');
    expect(seen.map((l) => l.line)).toEqual(['done']);
  });
});
