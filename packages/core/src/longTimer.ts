/**
 * The longest delay Node's timers honour: a larger one (2^31 ms is about 24.8 days) is clamped to
 * 1 ms with a warning, so a "597h" deadline would fire at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer started by `setLongTimeout`. */
export interface LongTimer {
  /** Stops the timer; idempotent. */
  clear(): void;
  /** Lets the process exit while only this timer is pending (like `Timeout.unref`). Returns the timer. */
  unref(): LongTimer;
}

/**
 * `setTimeout` for any delay: one longer than `MAX_TIMER_MS` is waited out as a chain of timers
 * of at most that length, so it fires after the whole delay, never early. A delay that is not a
 * finite number fails with a `RangeError` instead of being clamped to 1 ms.
 *
 * ```ts
 * const timer = setLongTimeout(() => cancel(), 25 * 86_400_000); // 25 days
 * timer.clear();
 * ```
 */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimer {
  if (typeof delayMs !== 'number' || Number.isNaN(delayMs) || delayMs === Number.POSITIVE_INFINITY) {
    throw new RangeError(`a timer delay must be a finite number of milliseconds (got ${String(delayMs)})`);
  }
  let remaining = Math.max(0, delayMs);
  let handle: NodeJS.Timeout | undefined;
  let referenced = true;
  let cleared = false;
  const arm = () => {
    const step = Math.min(remaining, MAX_TIMER_MS);
    remaining -= step;
    handle = setTimeout(() => {
      if (cleared) return;
      if (remaining > 0) arm();
      else callback();
    }, step);
    if (!referenced) handle.unref();
  };
  arm();
  const timer: LongTimer = {
    clear() {
      cleared = true;
      if (handle) clearTimeout(handle);
    },
    unref() {
      referenced = false;
      handle?.unref();
      return timer;
    },
  };
  return timer;
}
