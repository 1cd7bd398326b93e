import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TetherError, type ProcessBackend, type ProcessSpec, type ReattachRequest, type ReattachResult, type RunningProcess } from '@tether/core';
import { jobScript } from './jobScript.js';
import { JobProcess, type JobFiles } from './jobProcess.js';
import { phaseOf } from './jobState.js';
import { JobWatcher } from './jobWatcher.js';
import { RESERVED_SBATCH_FLAGS, SlurmJobOptions, defaultSpoolDir, type SlurmConfig } from './slurmConfig.js';
import { SlurmCommands, slurmMessage } from './slurmCommands.js';

/**
 * A ProcessBackend that runs each execution as a Slurm batch job: the spec becomes a job
 * script and sbatch flags, the job's state comes from squeue, its output from its files in the
 * spool directory (which the cluster's nodes must share with this machine).
 */
export class SlurmBackend implements ProcessBackend {
  readonly name: string;
  /** A GPU gate waits in Slurm's own queue: the job asks for a GPU (`--gres=gpu:1` unless it names its gres). */
  readonly schedulesGpus = true;
  readonly commands: SlurmCommands;
  readonly #config: SlurmConfig;
  readonly #spoolDir: string;
  readonly #watcher: JobWatcher;

  constructor(config: SlurmConfig) {
    this.#config = config;
    this.name = config.name;
    this.#spoolDir = config.spoolDir ?? defaultSpoolDir();
    this.commands = new SlurmCommands({ slurmConf: config.slurmConf, timeoutMs: config.commandTimeoutMs });
    this.#watcher = new JobWatcher(this.commands, config.pollMs);
  }

  #files(id: string): JobFiles & { dir: string; script: string } {
    const dir = join(this.#spoolDir, id);
    return { dir, script: join(dir, 'job.sh'), stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr'), failed: join(dir, 'failed') };
  }

  async spawn(spec: ProcessSpec): Promise<RunningProcess> {
    if (spec.tty) throw new TetherError('INVALID_ARGUMENT', 'a Slurm job cannot have a terminal (tty)', { backend: this.name });
    if (spec.stdin) throw new TetherError('INVALID_ARGUMENT', 'a Slurm job cannot take stdin', { backend: this.name });
    const parsed = SlurmJobOptions.safeParse(spec.backendOptions ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new TetherError('INVALID_ARGUMENT', `slurm option ${issue.path.join('.') || '(options)'}: ${issue.message}`, { backend: this.name });
    }
    const options: SlurmJobOptions = { ...this.#config.defaults, ...parsed.data };
    if (spec.gpuGate && options.gres === undefined) options.gres = 'gpu:1';
    for (const arg of options.sbatchArgs ?? []) {
      const flag = arg.split('=')[0]!;
      if (RESERVED_SBATCH_FLAGS.includes(flag)) throw new TetherError('INVALID_ARGUMENT', `sbatch argument ${flag} is set by tether itself`, { backend: this.name });
    }
    const cwd = spec.cwd ?? process.cwd();
    const cwdStat = await stat(cwd).catch(() => undefined);
    if (!cwdStat?.isDirectory()) throw new TetherError('CWD_NOT_FOUND', `the working directory does not exist: ${cwd}`, { cwd });

    const files = this.#files(spec.id);
    await rm(files.dir, { recursive: true, force: true });
    await mkdir(files.dir, { recursive: true, mode: 0o700 });
    await writeFile(files.script, jobScript(spec, files.failed), { mode: 0o700 });
    // Created before the job runs, so they can be read at once; the job appends (a requeued job adds, never truncates).
    await writeFile(files.stdout, '', { flag: 'a', mode: 0o600 });
    await writeFile(files.stderr, '', { flag: 'a', mode: 0o600 });

    const args = [
      '--parsable',
      `--job-name=tether-${spec.id}`.slice(0, 128),
      `--output=${files.stdout}`,
      `--error=${files.stderr}`,
      '--open-mode=append',
      `--chdir=${cwd}`,
      '--export=ALL',
      ...sbatchFlags(options, spec),
      files.script,
    ];
    const result = await this.commands.run('sbatch', args);
    const jobId = /^(\d+)/.exec(result.stdout.trim())?.[1];
    if (result.code !== 0 || !jobId) {
      throw new TetherError('SPAWN_FAILED', `Slurm refused the job: ${slurmMessage(result)}`, { errno: 'SLURM_REJECTED', backend: this.name });
    }
    return new JobProcess({ jobId, execId: spec.id, files, commands: this.commands, watcher: this.#watcher, tailMs: this.#config.tailMs });
  }

  /** Finds each job by the id recorded in its ref (`squeue`/`scontrol`) and continues its stream. */
  async reattach(requests: readonly ReattachRequest[]): Promise<Map<string, ReattachResult>> {
    const results = new Map<string, ReattachResult>();
    for (const request of requests) {
      const jobId = request.ref?.['jobId'];
      if (!jobId || !/^\d+$/.test(jobId)) {
        results.set(request.id, { lost: 'the daemon restarted before Slurm gave the job an id' });
        continue;
      }
      const job = await this.#watcher.query(jobId).catch(() => undefined);
      if (!job) {
        results.set(request.id, { lost: `the daemon restarted and Slurm no longer knows job ${jobId}` });
        continue;
      }
      const process = new JobProcess({
        jobId,
        execId: request.id,
        files: this.#files(request.id),
        commands: this.commands,
        watcher: this.#watcher,
        tailMs: this.#config.tailMs,
        resume: request.resume,
        // Started while no daemon watched: its nodes are recorded with the start.
        ...(phaseOf(job.state) !== 'queued' ? { alreadyRunning: { ...(job.nodes && job.nodes !== '(null)' ? { nodes: job.nodes } : {}), partition: job.partition } } : {}),
      });
      results.set(request.id, { process });
    }
    return results;
  }

  close(): void {
    this.#watcher.close();
  }
}

/** sbatch flags from the options; `--time` from the timeout when not given (Slurm counts whole minutes). */
export function sbatchFlags(options: SlurmJobOptions, spec: Pick<ProcessSpec, 'timeoutMs' | 'killGraceMs'>): string[] {
  const flags: string[] = [];
  if (options.partition) flags.push(`--partition=${options.partition}`);
  if (options.account) flags.push(`--account=${options.account}`);
  if (options.gres) flags.push(`--gres=${options.gres}`);
  if (options.cpusPerTask) flags.push(`--cpus-per-task=${options.cpusPerTask}`);
  if (options.mem) flags.push(`--mem=${options.mem}`);
  if (options.nodes !== undefined) flags.push(`--nodes=${options.nodes}`);
  const time = options.time ?? (spec.timeoutMs === undefined ? undefined : String(Math.ceil((spec.timeoutMs + (spec.killGraceMs ?? 0)) / 60_000) + 1));
  if (time) flags.push(`--time=${time}`);
  flags.push(...(options.sbatchArgs ?? []));
  return flags;
}
