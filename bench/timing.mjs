// Timing helpers shared by the benches (a plain module, not a bench: run.mjs runs *.bench.mjs only).

/** Milliseconds since `t0` (a `process.hrtime.bigint()`). */
export const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** p50 and p99 of latency samples in ms. */
export function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: +percentile(sorted, 50).toFixed(3), p99: +percentile(sorted, 99).toFixed(3), n: sorted.length };
}

/** Runs `fn` 20 times to warm up, then `rounds` times timed one after another. */
export async function timeMany(fn, rounds) {
  for (let i = 0; i < 20; i++) await fn();
  const samples = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(ms(t0));
  }
  return summary(samples);
}
