import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, setLongTimeout } from './longTimer.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

describe('setLongTimeout', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([
    ['597h', 597 * HOUR],
    ['25d', 25 * DAY],
    ['a year', 365 * DAY],
  ])('a %s delay fires after the whole delay, not before', (_name, delay) => {
    expect(delay).toBeGreaterThan(MAX_TIMER_MS);
    const fired = vi.fn();
    setLongTimeout(fired, delay);
    vi.advanceTimersByTime(1);
    expect(fired).not.toHaveBeenCalled(); // a plain setTimeout would have fired here
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(delay - MAX_TIMER_MS - 2);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10 * DAY);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('behaves like setTimeout for short delays, and clear() stops it in any leg of the chain', () => {
    const short = vi.fn();
    setLongTimeout(short, 10);
    vi.advanceTimersByTime(9);
    expect(short).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(short).toHaveBeenCalledTimes(1);

    const long = vi.fn();
    const timer = setLongTimeout(long, 60 * DAY);
    vi.advanceTimersByTime(30 * DAY);
    timer.clear();
    vi.advanceTimersByTime(60 * DAY);
    expect(long).not.toHaveBeenCalled();
  });

  it('refuses a delay that is not a finite number instead of firing at once', () => {
    expect(() => setLongTimeout(() => undefined, Number.NaN)).toThrow(RangeError);
    expect(() => setLongTimeout(() => undefined, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
