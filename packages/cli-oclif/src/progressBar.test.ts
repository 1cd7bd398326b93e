import { describe, expect, it } from 'vitest';
import { ProgressBar } from './progressBar.js';

/** A terminal of `columns` that records what is written to it. */
function terminal(columns: number) {
  const written: string[] = [];
  return { stream: { columns, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream, written };
}

describe('ProgressBar', () => {
  it('draws bytes, files and the current file on one line, and ends the line when done', () => {
    const { stream, written } = terminal(100);
    const bar = new ProgressBar(stream, 'push gpu1');
    bar.update({ files: 1, bytes: 512 * 1024, totalFiles: 4, totalBytes: 2 * 1024 * 1024, path: 'data/a.bin' });
    expect(written).toEqual(['\r\x1b[Kpush gpu1 [######------------------]  25%  1/4 files  512 KiB/2.0 MiB  data/a.bin']);
    bar.update({ files: 4, bytes: 2 * 1024 * 1024, totalFiles: 4, totalBytes: 2 * 1024 * 1024, path: 'data/d.bin' });
    bar.done();
    expect(written.at(-2)).toContain('[########################] 100%  4/4 files  2.0 MiB/2.0 MiB  data/d.bin');
    expect(written.at(-1)).toBe('\n');
  });

  it('shortens a long path from the left to fit the terminal', () => {
    const { stream, written } = terminal(90);
    new ProgressBar(stream, 'pull').update({ files: 0, bytes: 0, totalFiles: 1, totalBytes: 10, path: `${'deep/'.repeat(20)}file.txt` });
    const line = written[0]!.slice(4);
    expect(line.length).toBeLessThanOrEqual(89);
    expect(line).toMatch(/…[a-z/]*file\.txt$/);
  });
});
