import { closest, distance } from 'fastest-levenshtein';
import type { Issue } from './formatIssues.js';

/** `daemon_prot` → `daemon_port`: the closest candidate, when it is close enough to be a typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const list = [...new Set(candidates)].filter((c) => c !== word);
  if (list.length === 0) return undefined;
  const best = closest(word, list);
  return distance(word, best) <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** ` (did you mean daemon_port?)`, or nothing. */
export function suggestion(word: string, candidates: Iterable<string>): string {
  const best = didYouMean(word, candidates);
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

/**
 * The field names a schema declares, when it tells: a zod object's `shape` (also behind a
 * refinement), a valibot object's `entries`. Undefined for a schema that does not say.
 */
export function declaredKeys(schema: unknown): string[] | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  const s = schema as { shape?: unknown; entries?: unknown; _zod?: { def?: { shape?: unknown; in?: unknown } } };
  for (const candidate of [s.shape, s._zod?.def?.shape, s.entries]) {
    if (typeof candidate === 'object' && candidate !== null) return Object.keys(candidate);
  }
  // A zod pipe (`.transform()`, `.pipe()`) declares what its input schema declares.
  return s._zod?.def?.in !== undefined ? declaredKeys(s._zod.def.in) : undefined;
}

/**
 * The fields a strict schema refused as unrecognised: zod's `unrecognized_keys` issue lists them
 * (`keys`); other libraries report one issue per key, its path ending in the key.
 */
export function refusedKeys(issues: readonly Issue[]): string[] {
  const keys: string[] = [];
  for (const issue of issues as ReadonlyArray<Issue & { keys?: unknown }>) {
    if (issue.code === 'unrecognized_keys' && Array.isArray(issue.keys)) keys.push(...issue.keys.filter((k): k is string => typeof k === 'string'));
    else if (/^(unrecognized|unknown|invalid) key/i.test(issue.message) && issue.path?.length === 1) {
      const part = issue.path[0]!;
      const key = typeof part === 'object' && part !== null ? part.key : part;
      if (typeof key === 'string') keys.push(key);
    }
  }
  return keys;
}

/** A Standard Schema's validate, as far as this module needs it. */
interface Validates {
  readonly '~standard': { validate(value: unknown): { readonly issues?: readonly Issue[] } | Promise<{ readonly issues?: readonly Issue[] }> };
}

/** What is wrong with a machine's fields, by its transport's schema. */
export type MachineFieldsVerdict =
  | { readonly unknown: string; readonly known: readonly string[] }
  | { readonly issue: Issue }
  | undefined;

/**
 * Checks a machine against its transport's schema. `common` are the fields every machine may
 * have (`name`, `transport` and the fields existing configs carry); any other field must be one
 * the schema declares (read from a zod or valibot object), or be accepted by a strict schema that
 * does not tell its fields: an unknown field is reported before any other issue.
 */
export async function checkMachineFields(schema: Validates, machine: Readonly<Record<string, unknown>>, common: readonly string[]): Promise<MachineFieldsVerdict> {
  const issues = (await schema['~standard'].validate(machine)).issues ?? [];
  const declared = declaredKeys(schema);
  const known = [...common, ...(declared ?? [])];
  const refused = new Set(refusedKeys(issues));
  const unknown = Object.keys(machine).find((k) => !common.includes(k) && (refused.has(k) || (declared !== undefined && !declared.includes(k))));
  if (unknown !== undefined) return { unknown, known };
  const issue = issues.find((i) => refusedKeys([i]).length === 0);
  return issue ? { issue } : undefined;
}
