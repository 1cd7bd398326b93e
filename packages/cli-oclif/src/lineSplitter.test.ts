import { describe, expect, it } from 'vitest';
import { LineSplitter } from './lineSplitter.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('LineSplitter', () => {
  it('cuts each stream into lines, keeping partial lines until they end', () => {
    const split = new LineSplitter();
    expect(split.push('stdout', bytes('a\nb'), 1)).toEqual([{ type: 'log', stream: 'stdout', line: 'a', seq: 1 }]);
    expect(split.push('stderr', bytes('e1\n'), 2)).toEqual([{ type: 'log', stream: 'stderr', line: 'e1', seq: 2 }]);
    expect(split.push('stdout', bytes('c\r\nd'), 3)).toEqual([{ type: 'log', stream: 'stdout', line: 'bc', seq: 3 }]);
    expect(split.flush()).toEqual([{ type: 'log', stream: 'stdout', line: 'd', seq: 3 }]);
    expect(split.flush()).toEqual([]);
  });

  it('decodes a character split across chunks whole; pty output is stdout', () => {
    const split = new LineSplitter();
    const euro = bytes('€\n');
    expect(split.push('pty', euro.subarray(0, 2), 1)).toEqual([]);
    expect(split.push('pty', euro.subarray(2), 2)).toEqual([{ type: 'log', stream: 'stdout', line: '€', seq: 2 }]);
  });
});

describe('LineSplitter with an overlong line', () => {
  it('gives out pieces marked partial as the line comes, and the piece that ends it unmarked', () => {
    const split = new LineSplitter(4);
    expect(split.push('stdout', bytes('abc'), 1)).toEqual([]);
    expect(split.push('stdout', bytes('defghij'), 2)).toEqual([
      { type: 'log', stream: 'stdout', line: 'abcd', seq: 2, partial: true },
      { type: 'log', stream: 'stdout', line: 'efgh', seq: 2, partial: true },
    ]);
    expect(split.push('stdout', bytes('k\nshort\n'), 3)).toEqual([
      { type: 'log', stream: 'stdout', line: 'ijk', seq: 3 },
      { type: 'log', stream: 'stdout', line: 'shor', seq: 3, partial: true },
      { type: 'log', stream: 'stdout', line: 't', seq: 3 },
    ]);
    expect(split.push('stdout', bytes('xxxxxxxxx'), 4)).toHaveLength(2);
    expect(split.flush()).toEqual([{ type: 'log', stream: 'stdout', line: 'x', seq: 4 }]);
  });

  it('holds at most a piece of a 200 MiB line without a newline, and never splits a surrogate pair', () => {
    const split = new LineSplitter();
    const chunk = new Uint8Array(1024 * 1024).fill(0x61);
    let pieces = 0;
    let chars = 0;
    for (let i = 0; i < 200; i++) {
      for (const record of split.push('stdout', chunk, i + 1)) {
        expect(record.partial).toBe(true);
        expect(record.line.length).toBeLessThanOrEqual(64 * 1024);
        pieces++;
        chars += record.line.length;
      }
    }
    const rest = split.flush();
    expect(rest).toHaveLength(1);
    expect(rest[0]!.partial).toBeUndefined();
    expect(chars + rest[0]!.line.length).toBe(200 * 1024 * 1024);
    expect(pieces).toBeGreaterThan(3000);

    const emoji = new LineSplitter(3);
    const records = emoji.push('stdout', bytes('a😀😀\n'), 1);
    expect(records.map((r) => r.line).join('')).toBe('a😀😀');
    for (const r of records) expect(/[\ud800-\udbff]$/.test(r.line)).toBe(false);
  });
});
