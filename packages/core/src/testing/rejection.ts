import { isTetherError, type TetherError } from '../errors.js';

/** The TetherError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<TetherError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isTetherError(error)) throw new Error(`expected a TetherError, got ${String(error)}`);
  return error;
}
