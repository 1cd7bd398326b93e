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
