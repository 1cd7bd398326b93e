import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const Arg = z.string().min(1).max(4096).refine((s) => !/[\0\n]/.test(s), 'must not contain a NUL byte or a newline');

/** Options that map to sbatch flags: set per execution (`backendOptions`) or as defaults in the plugin config. */
export const SlurmJobOptions = z
  .object({
    /** `--partition`. */
    partition: Arg.optional(),
    /** `--account`. */
    account: Arg.optional(),
    /** `--gres`, e.g. `gpu:2`. */
    gres: Arg.optional(),
    /** `--cpus-per-task`. */
    cpusPerTask: z.number().int().min(1).max(100_000).optional(),
    /** `--mem`, e.g. `4G`. */
    mem: Arg.optional(),
    /** `--nodes`, e.g. `1` or `2-4`. */
    nodes: z.union([z.number().int().min(1), Arg]).optional(),
    /** `--time` as Slurm writes it (`30`, `1:00:00`); default: the execution's timeout rounded up to minutes, plus its grace. */
    time: Arg.optional(),
    /** More sbatch arguments, passed as they are (not the ones tether sets itself: output, error, chdir, export…). */
    sbatchArgs: z.array(Arg).max(64).optional(),
  })
  .strict();
export type SlurmJobOptions = z.infer<typeof SlurmJobOptions>;

/** Flags tether sets itself, which `sbatchArgs` may not override. */
export const RESERVED_SBATCH_FLAGS = [
  '-o', '--output', '-e', '--error', '-i', '--input', '-D', '--chdir', '--export', '--export-file', '--wrap',
  '--parsable', '-W', '--wait', '-a', '--array', '-J', '--job-name', '--open-mode', '-H', '--hold',
];

export const SlurmConfig = z
  .object({
    /** The backend's name, as `exec start --backend NAME` selects it. Default `slurm`. */
    name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/).default('slurm'),
    /**
     * Where job scripts and output files go. Must be on a filesystem the cluster's nodes share
     * with this machine (home directories usually are). Default `$XDG_STATE_HOME/tether/slurm`.
     */
    spoolDir: z.string().min(1).optional(),
    /** `SLURM_CONF` for the Slurm commands (default: Slurm's own lookup). */
    slurmConf: z.string().min(1).optional(),
    /** How often job states are asked of Slurm (`squeue`), ms. Default 250. */
    pollMs: z.number().int().min(20).max(60_000).default(250),
    /** How often output files are read for new bytes, ms. Default 100. */
    tailMs: z.number().int().min(10).max(10_000).default(100),
    /** Kill a Slurm command that takes longer than this, ms. Default 30000. */
    commandTimeoutMs: z.number().int().min(100).default(30_000),
    /** Defaults for every job; an execution's `backendOptions` override them field by field. */
    defaults: SlurmJobOptions.default({}),
    /** Also provide the machine's GPU probe from Slurm's GRES (`sinfo`). Default false. */
    gpuProbe: z.boolean().default(false),
  })
  .strict();
export type SlurmConfig = z.infer<typeof SlurmConfig>;
export type SlurmConfigInput = z.input<typeof SlurmConfig>;

export function defaultSpoolDir(): string {
  return join(process.env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state'), 'tether', 'slurm');
}
