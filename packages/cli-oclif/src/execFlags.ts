import { Flags } from '@oclif/core';
import { randomBytes } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { ExecStartParams, FsApi, MachineInfo } from '@tether/core';
import { CliError } from './cliError.js';
import { parseDuration } from './duration.js';

/** The flags that say what to run (`exec run` and `exec start`). */
export const execSpecFlags = {
  cmd: Flags.string({ description: 'the command: a shell string, run with sh -c (or --shell); sh -lc on machines other than local (see --login-shell)' }),
  script: Flags.string({
    description: 'a local script file, uploaded to the machine (~/.local/state/tether/scripts/) and run by its path, so its #! line chooses the interpreter (instead of --cmd)',
    exclusive: ['cmd'],
  }),
  'login-shell': Flags.boolean({
    description:
      'run the command in a login shell (sh -lc: ~/.profile sets PATH, conda, CUDA) with PYTHONUNBUFFERED=1, as codexd does. Default: on for machines other than local (the machine\'s login_shell in the config can turn it off), off on local',
    allowNo: true,
  }),
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
  backend: Flags.string({
    description:
      'the process backend that runs it on the machine: process (a child process) or slurm (a Slurm batch job; needs @tether/plugin-slurm configured on the machine). Default: the machine\'s default_backend, else slurm when a Slurm option below is given, else the daemon\'s default',
  }),
  partition: Flags.string({ description: 'Slurm: the partition (sbatch --partition)' }),
  gres: Flags.string({ description: 'Slurm: generic resources, e.g. gpu:2 (sbatch --gres)' }),
  'cpus-per-task': Flags.integer({ description: 'Slurm: CPUs per task (sbatch --cpus-per-task)', min: 1 }),
  mem: Flags.string({ description: 'Slurm: memory per node, e.g. 4G (sbatch --mem)' }),
  nodes: Flags.string({ description: 'Slurm: node count, e.g. 1 or 2-4 (sbatch --nodes)' }),
  account: Flags.string({ description: 'Slurm: the account charged (sbatch --account)' }),
  'sbatch-arg': Flags.string({ description: 'Slurm: one more sbatch argument, as it is (--sbatch-arg=--qos=high); repeatable', multiple: true }),
};

/** The Slurm flags, and the backendOptions field each one sets. */
const SLURM_FLAGS = { partition: 'partition', gres: 'gres', 'cpus-per-task': 'cpusPerTask', mem: 'mem', nodes: 'nodes', account: 'account', 'sbatch-arg': 'sbatchArgs' } as const;

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
  readonly 'login-shell'?: boolean;
  readonly backend?: string;
  readonly partition?: string;
  readonly gres?: string;
  readonly 'cpus-per-task'?: number;
  readonly mem?: string;
  readonly nodes?: string;
  readonly account?: string;
  readonly 'sbatch-arg'?: string[];
}

/** Where the spec will run. */
export interface SpecTarget {
  /** The local machine: relative paths are the caller's, and no login shell by default. */
  readonly isLocal: boolean;
  /** Where `--script` is uploaded. */
  readonly machine: { readonly fs: FsApi; info(): Promise<MachineInfo> };
  /** The machine's `login_shell` from the config, if set. */
  readonly loginShell?: boolean;
  /** The machine's `default_backend` from the config, if set. */
  readonly defaultBackend?: string;
}

/** The SpecTarget of an opened machine. */
export function specTarget(opened: Pick<SpecTarget, 'isLocal' | 'machine'> & { readonly config?: Readonly<Record<string, unknown>> }): SpecTarget {
  const loginShell = opened.config?.['login_shell'];
  const defaultBackend = opened.config?.['default_backend'];
  return {
    isLocal: opened.isLocal,
    machine: opened.machine,
    ...(typeof loginShell === 'boolean' ? { loginShell } : {}),
    ...(typeof defaultBackend === 'string' ? { defaultBackend } : {}),
  };
}

/** Where `--script` files are uploaded on the machine, under its home (the filesystem backend's default root). */
const SCRIPT_DIR = '.local/state/tether/scripts';

/**
 * The execution spec the flags describe. On the local machine a relative or missing `--cwd`
 * means the caller's current directory, as a local shell would.
 */
export async function specFromFlags(flags: ExecSpecFlagValues, target: SpecTarget): Promise<ExecStartParams> {
  const local = target.isLocal;
  let command = flags.cmd;
  if (flags.tty && flags.stdin) {
    throw new CliError('USAGE', '--tty and --stdin cannot be used together', {
      hint: 'a terminal echoes what is written into the output and acts on control characters (^C, ^D), so input is not passed byte for byte: use --stdin (pipes) to write to the command, or --tty alone',
    });
  }
  if (flags.script !== undefined) command = await uploadScript(flags.script, target.machine);
  if (command === undefined || command.trim() === '') {
    throw new CliError('USAGE', 'give the command to run with --cmd (or --script FILE)', { hint: "e.g. tether exec run --cmd 'uname -a'" });
  }
  // codexd runs commands with `sh -lc` and PYTHONUNBUFFERED=1; remote machines do the same by default.
  const login = flags['login-shell'] ?? target.loginShell ?? !local;
  const env: Record<string, string> = login ? { PYTHONUNBUFFERED: '1' } : {};
  for (const pair of flags.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError('INVALID_ARGUMENT', `--env: expected K=V, got "${pair}"`, { hint: 'e.g. --env CUDA_VISIBLE_DEVICES=0' });
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const cwd = local ? resolve(flags.cwd ?? process.cwd()) : flags.cwd;
  const { backend, backendOptions } = backendFromFlags(flags, target);
  return {
    ...(backend !== undefined ? { backend } : {}),
    ...(backendOptions !== undefined ? { backendOptions } : {}),
    command,
    ...(flags.shell !== undefined ? { shell: flags.shell } : {}),
    ...(login ? { login: true } : {}),
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

/**
 * `--backend` and the Slurm flags: the backend named (or the machine's `default_backend`, or
 * `slurm` when only Slurm flags are given) and its options. The backend validates the options.
 */
export function backendFromFlags(flags: Pick<ExecSpecFlagValues, 'backend' | keyof typeof SLURM_FLAGS>, target: Pick<SpecTarget, 'defaultBackend'>): { backend?: string; backendOptions?: Record<string, string | number | string[]> } {
  const backendOptions: Record<string, string | number | string[]> = {};
  for (const [flag, field] of Object.entries(SLURM_FLAGS)) {
    const value = flags[flag as keyof typeof SLURM_FLAGS];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    // `--nodes 2` is a count; `--nodes 2-4` a range, passed as written.
    backendOptions[field] = flag === 'nodes' && /^\d+$/.test(String(value)) ? Number(value) : value;
  }
  const given = Object.keys(backendOptions);
  const backend = flags.backend ?? target.defaultBackend ?? (given.length > 0 ? 'slurm' : undefined);
  if (given.length > 0 && backend === 'process') {
    const names = Object.entries(SLURM_FLAGS).filter(([, field]) => given.includes(field)).map(([flag]) => `--${flag}`);
    throw new CliError('USAGE', `${names.join(', ')} ${names.length === 1 ? 'is a Slurm option' : 'are Slurm options'}: the process backend takes none`, {
      hint: 'add --backend slurm (the machine needs @tether/plugin-slurm configured), or leave the Slurm options out',
    });
  }
  return { ...(backend !== undefined ? { backend } : {}), ...(given.length > 0 ? { backendOptions } : {}) };
}

/** `--format` of `exec run` and `exec logs`. */
export const textFormatFlag = Flags.string({
  description: 'json: JSON lines (the default when stdout is not a terminal); text: the output as it was written, colours kept, stderr lines on stderr (the default on a terminal)',
  options: ['json', 'text'],
});

/**
 * Uploads a local script to the machine (mode 0700, a name of its own) and returns the command
 * that runs it by its path: the kernel honours its `#!` line, and a script without one is run by
 * the shell, as codexd does.
 */
async function uploadScript(file: string, machine: SpecTarget['machine']): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (error) {
    throw new CliError('INVALID_ARGUMENT', `--script: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, {
      hint: 'give the path of a local script file',
    });
  }
  const name = basename(file).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'script';
  const { home } = await machine.info();
  const path = `${home.replace(/\/+$/, '')}/${SCRIPT_DIR}/${Date.now().toString(36)}-${randomBytes(4).toString('hex')}-${name}`;
  try {
    await machine.fs.write(path, new Uint8Array(data), { mode: 0o700, mkdir: true });
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'PATH_OUTSIDE_ROOT') throw error;
    throw new CliError('PATH_OUTSIDE_ROOT', `--script: cannot upload ${file}: the machine's filesystem roots do not include ${home}/${SCRIPT_DIR}`, {
      hint: `put the script inside one of the daemon's roots with tether file write --src ${file} --dst <dir>/${name} --mode 0755, then run it with --cmd <dir>/${name}`,
      cause: error,
    });
  }
  return shellWord(path);
}

/** `word` quoted for sh when it needs it. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** `--project P --ref R` (exec run and exec start): a fresh git worktree of P at R, as codex-remote's. */
export const projectFlags = {
  project: Flags.string({ description: 'run in a fresh git worktree of this project (projects: in the machine config), removed after; needs --ref' }),
  ref: Flags.string({ description: 'with --project: the branch, tag or commit to check out', dependsOn: ['project'] }),
};

/** The project and ref given, checked as codex-remote words it (`ref is required when project_id is set`). */
export function projectOption(flags: { project?: string | undefined; ref?: string | undefined }): { project: string; ref: string } | undefined {
  if (flags.project === undefined) return undefined;
  if (flags.ref === undefined || flags.ref === '') {
    throw new CliError('USAGE', `ref is required when project_id is set: --project ${flags.project} needs --ref`, { hint: `e.g. --project ${flags.project} --ref main (a branch, tag or commit)` });
  }
  return { project: flags.project, ref: flags.ref };
}
