import { describe, expect, it } from 'vitest';
import { TetherError } from '@tether/core';
import { fsError } from './fsError.js';

function sysError(code: string): Error {
  return Object.assign(new Error(`${code}: something, open '/somewhere/outside/secret'`), { code });
}

describe('fsError', () => {
  it.each([
    ['ENOENT', 'PATH_NOT_FOUND'],
    ['EACCES', 'PERMISSION_DENIED'],
    ['EPERM', 'PERMISSION_DENIED'],
    ['ENOTDIR', 'NOT_A_DIRECTORY'],
    ['EISDIR', 'NOT_A_FILE'],
    ['EEXIST', 'PATH_EXISTS'],
    ['ENOTEMPTY', 'DIRECTORY_NOT_EMPTY'],
    ['EXDEV', 'INVALID_ARGUMENT'],
    ['ENOSPC', 'DISK_FULL'],
    ['EIO', 'INTERNAL'],
  ])('maps %s to %s, keeping the original as cause and out of the message', (errno, code) => {
    const original = sysError(errno);
    const error = fsError(original, 'docs/a.txt');
    expect(error).toBeInstanceOf(TetherError);
    expect(error.code).toBe(code);
    expect(error.cause).toBe(original);
    expect(error.details).toEqual({ path: 'docs/a.txt', errno });
    expect(error.message).toContain('docs/a.txt');
    expect(JSON.stringify(error.toJSON())).not.toContain('/somewhere');
  });

  it('passes TetherErrors through and wraps non-errno failures as INTERNAL', () => {
    const tether = new TetherError('TOO_LARGE');
    expect(fsError(tether, 'x')).toBe(tether);
    expect(fsError(new Error('boom')).code).toBe('INTERNAL');
  });
});
