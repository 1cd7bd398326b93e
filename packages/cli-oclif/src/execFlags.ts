import { Flags } from '@oclif/core';
import { resolve } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { ExecStartParams } from '@tether/core';
import { CliError } from './cliError.js';
import { parseDuration } from './duration.js';

/** The flags that say what to run (`exec run` and `exec start`). */
export const execSpecFlags = {
  cmd: Flags.string({ description: 'the command: a shell string, run with sh -c (or --shell)' }),
  script: Flags.string({ description: 'a local script file whose text is run by the shell (instead of --cmd)', exclusive: ['cmd'] }),
  cwd: Flags.string({ description: 'working directory (default: the current directory on local, the daemon\'s home directory elsewhere)' }),
  env: Flags.string({ description: 'an environment variable K=V, added to the daemon\'s environment; repeatable', multiple: true }),
  shell: Flags.string({ description: 'the shell that runs the command (default: sh)' }),
  timeout: Flags.string({ description: 'cancel it after this long (500ms, 10s, 5m); end_reason timed_out' }),
  tty: Flags.boolean({ description: 'run it in a pseudo-terminal (output arrives as stdout); not with --stdin' }),
  stdin: Flags.boolean({ description: 'keep its stdin open for exec write (default: stdin is closed); not with --tty' }),
  'gpu-gate': Flags.boolean({ description: 'queue it (status queued) until a GPU is free' }),
  'gpu-max-util': Flags.integer({ description: 'GPU gate: highest utilisation (%) of a free GPU', default: 10, min: 0, max: 100 }),
  'gpu-max-mem-mib': Flags.integer({ description: 'GPU gate: most memory in use (MiB) on a free GPU', default: 1000, min: 0 }),
  'gpu-gate-timeout': Flags.string({ description: 'GPU gate: give up (failed_to_start, GATE_TIMEOUT) after this long' }),
};

export interface ExecSpecFlagValues {
  readonly cmd?: string;
  readonly script?: string;
  readonly cwd?: string;
  readonly env?: string[];
  readonly shell?: string;
  readonly timeout?: string;
  readonly tty: boolean;
  readonly stdin: boolean;
  readonly 'gpu-gate': boolean;
  readonly 'gpu-max-util': number;
  readonly 'gpu-max-mem-mib': number;
  readonly 'gpu-gate-timeout'?: string;
}

/**
 * The execution spec the flags describe. On the local machine a relative or missing `--cwd`
 * means the caller's current directory, as a local shell would.
 */
export async function specFromFlags(flags: ExecSpecFlagValues, local: boolean): Promise<ExecStartParams> {
  let command = flags.cmd;
  if (flags.script !== undefined) {
    try {
      command = await readFile(flags.script, 'utf8');
    } catch (error) {
      throw new CliError('INVALID_ARGUMENT', `--script: cannot read ${flags.script} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, {
        hint: 'give the path of a local script file',
      });
    }
  }
  if (flags.tty && flags.stdin) {
    throw new CliError('USAGE', '--tty and --stdin cannot be used together', {
      hint: 'a terminal echoes what is written into the output and acts on control characters (^C, ^D), so input is not passed byte for byte: use --stdin (pipes) to write to the command, or --tty alone',
    });
  }
  if (command === undefined || command.trim() === '') {
    throw new CliError('USAGE', 'give the command to run with --cmd (or --script FILE)', { hint: "e.g. tether exec run --cmd 'uname -a'" });
  }
  const env: Record<string, string> = {};
  for (const pair of flags.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError('INVALID_ARGUMENT', `--env: expected K=V, got "${pair}"`, { hint: 'e.g. --env CUDA_VISIBLE_DEVICES=0' });
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const cwd = local ? resolve(flags.cwd ?? process.cwd()) : flags.cwd;
  return {
    command,
    ...(flags.shell !== undefined ? { shell: flags.shell } : {}),
    ...(cwd !== undefined ? { cwd } : {}),
    ...(Object.keys(env).length > 0 ? { env } : {}),
    ...(flags.timeout !== undefined ? { timeoutMs: parseDuration(flags.timeout, 'timeout') } : {}),
    ...(flags.tty ? { tty: { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 } } : {}),
    ...(flags.stdin ? { stdin: true } : {}),
    ...(flags['gpu-gate']
      ? {
          gpuGate: {
            maxUtilizationPct: flags['gpu-max-util'],
            maxMemoryUsedMiB: flags['gpu-max-mem-mib'],
            ...(flags['gpu-gate-timeout'] !== undefined ? { timeoutMs: parseDuration(flags['gpu-gate-timeout'], 'gpu-gate-timeout') } : {}),
          },
        }
      : {}),
  };
}

/** `--format` of `exec run` and `exec logs`. */
export const textFormatFlag = Flags.string({
  description: 'json: JSON lines (the default when stdout is not a terminal); text: the output as it was written, colours kept, stderr lines on stderr (the default on a terminal)',
  options: ['json', 'text'],
});
