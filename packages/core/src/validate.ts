import type { z } from 'zod';
import { TetherError } from './errors.js';

/** Parses `value` with `schema` or fails with `INVALID_ARGUMENT` naming the bad field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` (${issue.path.join('.')})` : '';
  throw new TetherError('INVALID_ARGUMENT', `invalid ${what}${where}: ${issue?.message ?? 'malformed'}`, {
    issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}
