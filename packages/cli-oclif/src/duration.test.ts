import { describe, expect, it } from 'vitest';
import { CliError } from './cliError.js';
import { parseDuration, parseTime, rfc3339 } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['250', 250],
    [' 3s ', 3000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text, 'timeout')).toBe(ms);
  });

  it.each(['', 'ten seconds', '5 m', '-5s', '5sec', 'ms'])('rejects %j naming the flag', (text) => {
    const error = (() => {
      try {
        parseDuration(text, 'grace');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('--grace'), hint: expect.stringContaining('500ms') });
  });
});

describe('parseDuration limits', () => {
  it('refuses more than 365 days, with the maximum in the hint', () => {
    expect(parseDuration('365d', 'timeout')).toBe(31_536_000_000);
    for (const text of ['99999999h', '366d', '364d25h', '31536000001', '9'.repeat(400)]) {
      expect(() => parseDuration(text, 'timeout')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('too long'), hint: expect.stringContaining('365d') }));
    }
  });
  it('refuses zero unless the flag allows it', () => {
    for (const text of ['0', '0s', '0m0s', '0.0001ms']) expect(() => parseDuration(text, 'timeout')).toThrow(/--timeout: the duration must be more than 0/);
    expect(parseDuration('0s', 'grace', { allowZero: true })).toBe(0);
  });
});

describe('parseTime', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  it('takes RFC 3339 times', () => {
    expect(parseTime('2024-05-01T11:00:00Z', 'since', now)).toBe(Date.parse('2024-05-01T11:00:00Z'));
    expect(parseTime('2024-05-01T13:00:00+02:00', 'since', now)).toBe(Date.parse('2024-05-01T11:00:00Z'));
  });
  it('takes a duration as that long ago', () => {
    expect(parseTime('10m', 'since', now)).toBe(now - 600_000);
  });
  it('rejects anything else', () => {
    expect(() => parseTime('yesterday', 'since', now)).toThrow(/--since: invalid time "yesterday"/);
    expect(() => parseTime('2024-13-45T99:00:00Z', 'until', now)).toThrow(/--until: invalid time/);
  });
  it('formats epoch ms as RFC 3339, null as null', () => {
    expect(rfc3339(0)).toBe('1970-01-01T00:00:00.000Z');
    expect(rfc3339(null)).toBeNull();
  });
});
