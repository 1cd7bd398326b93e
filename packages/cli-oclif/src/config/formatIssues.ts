/** A validation issue, as zod and Standard Schema report them. */
export interface Issue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
  readonly code?: string;
  readonly expected?: string;
}

/** `machines[2].daemon_port`: indexes in brackets, keys after dots. */
export function formatPath(path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string {
  let out = '';
  for (const part of path) {
    const key = typeof part === 'object' && part !== null ? part.key : part;
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

const ARTICLES: Readonly<Record<string, string>> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'a boolean (true or false)',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/** The first issue as one line: `machines[2].daemon_port: expected a number`. */
export function formatIssues(issues: readonly Issue[], prefix: ReadonlyArray<string | number> | string = []): string {
  const issue = issues[0];
  if (!issue) return 'invalid';
  const inner = formatPath(issue.path ?? []);
  const where =
    typeof prefix === 'string' ? (inner === '' ? prefix : inner.startsWith('[') ? `${prefix}${inner}` : `${prefix}.${inner}`) : formatPath([...prefix, ...(issue.path ?? [])]);
  const message =
    issue.code === 'invalid_type' && issue.expected !== undefined ? `expected ${ARTICLES[issue.expected] ?? issue.expected}` : issue.message;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${where === '' ? '(top level)' : where}: ${message}${more}`;
}
