import { describe, expect, it } from 'vitest';
import { directoryItself } from './syncCommand.js';

describe("rsync's rule for the source", () => {
  it('DIR copies the directory itself (under its name), DIR/ and . its contents', () => {
    expect(directoryItself('proj')).toBe('proj');
    expect(directoryItself('/home/me/proj')).toBe('proj');
    expect(directoryItself('~/runs/2026')).toBe('2026');
    for (const contents of ['proj/', '/home/me/proj/', '.', './', '..', '~', '~/', '/', 'a/.']) expect(directoryItself(contents), contents).toBeUndefined();
  });
});
