import { describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { formatSshTarget, parseSshTarget } from './sshTarget.js';
import { shellQuote } from './shellQuote.js';

describe('parseSshTarget', () => {
  it('reads every usual form', () => {
    expect(parseSshTarget('gpu1')).toEqual({ host: 'gpu1' });
    expect(parseSshTarget('alice@gpu1')).toEqual({ user: 'alice', host: 'gpu1' });
    expect(parseSshTarget('alice@gpu1:2222')).toEqual({ user: 'alice', host: 'gpu1', port: 2222 });
    expect(parseSshTarget('gpu1.example.com:22')).toEqual({ host: 'gpu1.example.com', port: 22 });
    expect(parseSshTarget('ssh://bob@10.0.0.5:2200')).toEqual({ user: 'bob', host: '10.0.0.5', port: 2200 });
    expect(parseSshTarget('root@[::1]:2222')).toEqual({ user: 'root', host: '::1', port: 2222 });
    expect(parseSshTarget('fe80::1')).toEqual({ host: 'fe80::1' });
    expect(parseSshTarget('me+x@host')).toEqual({ user: 'me+x', host: 'host' });
  });

  it('refuses what is not a target', () => {
    for (const bad of ['', ' ', 'host:0', 'host:99999', 'host:abc', '@host', 'user@', '-oProxyCommand=x', 'a b']) {
      let error: unknown;
      try {
        parseSshTarget(bad);
      } catch (e) {
        error = e;
      }
      expect(isTetherError(error, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
  });

  it('formats targets back', () => {
    expect(formatSshTarget({ user: 'a', host: '::1', port: 22 })).toBe('a@[::1]:22');
    expect(formatSshTarget({ host: 'gpu1' })).toBe('gpu1');
  });
});

describe('shellQuote', () => {
  it('leaves safe words alone, quotes the rest, and can keep a leading ~/', () => {
    expect(shellQuote('/a/b-c.d')).toBe('/a/b-c.d');
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(shellQuote('[127.0.0.1]:22')).toBe(`'[127.0.0.1]:22'`);
    expect(shellQuote('~/.local/state/tether/token', true)).toBe('~/.local/state/tether/token');
    expect(shellQuote('~/my dir/token', true)).toBe(`~/'my dir/token'`);
    expect(shellQuote('~/x')).toBe(`'~/x'`);
  });
});
