import type { ProcessSpec } from '@tether/core';

/** Quotes a string for a POSIX shell: inside single quotes, with `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The batch script of an execution. It checks that the program exists and may be run (on the
 * node: `command -v`, `-x`), writing why not into `failedFile` (`ENOENT` / `EACCES` and a
 * message) so that a program missing on the node ends as failed_to_start, then `exec`s it under
 * `env`: the job's exit code and signal are the program's own, and Slurm's signals reach it directly.
 */
export function jobScript(spec: ProcessSpec, failedFile: string): string {
  const env = { ...(spec.env ?? {}), TETHER_EXEC_ID: spec.id };
  const assignments = Object.entries(env).map(([key, value]) => shellQuote(`${key}=${value}`));
  const program = spec.argv[0];
  const fail = (code: string, message: string) => `{ printf '%s\\n%s\\n' ${code} ${shellQuote(message)} > ${shellQuote(failedFile)}; exit 127; }`;
  return [
    '#!/bin/sh',
    `# tether execution ${spec.id}`,
    `p=${shellQuote(program)}`,
    'case "$p" in',
    `  */*) [ -e "$p" ] || ${fail('ENOENT', `no such file: ${program}`)}`,
    `       if [ -d "$p" ] || [ ! -x "$p" ]; then ${fail('EACCES', `not executable: ${program}`)}; fi ;;`,
    `  *) command -v "$p" >/dev/null 2>&1 || ${fail('ENOENT', `not found on the node's PATH: ${program}`)} ;;`,
    'esac',
    `exec env ${spec.envMode === 'exact' ? '-i ' : ''}${assignments.join(' ')} ${spec.argv.map(shellQuote).join(' ')}`,
    '',
  ].join('\n');
}
