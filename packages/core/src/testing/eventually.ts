/**
 * Polls `check` every 20 ms until it returns true; fails with `<what> not met within N ms` after
 * `withinMs`. For tests that wait on a condition instead of sleeping.
 */
export async function eventually(check: () => boolean | Promise<boolean>, withinMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
