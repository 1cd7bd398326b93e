import { parseSqueue, SQUEUE_FORMAT, type JobInfo } from './jobState.js';
import { slurmMessage, type SlurmCommands } from './slurmCommands.js';

type Listener = (info: JobInfo | undefined) => void;

/**
 * Asks Slurm for the state of every watched job with one `squeue` call per round (every
 * `pollMs` while anything is watched), and tells each job's listener. `undefined` means Slurm
 * did not list the job (it was purged, or the id is wrong).
 */
export class JobWatcher {
  readonly #commands: SlurmCommands;
  readonly #pollMs: number;
  readonly #listeners = new Map<string, Listener>();
  #timer: NodeJS.Timeout | undefined;
  #polling = false;
  #closed = false;

  constructor(commands: SlurmCommands, pollMs: number) {
    this.#commands = commands;
    this.#pollMs = pollMs;
  }

  watch(jobId: string, listener: Listener): () => void {
    this.#listeners.set(jobId, listener);
    this.#schedule(0);
    return () => {
      this.#listeners.delete(jobId);
    };
  }

  /** One job's state now (for re-attach), or undefined if Slurm does not know it. */
  async query(jobId: string): Promise<JobInfo | undefined> {
    const result = await this.#commands.run('squeue', ['-h', '-t', 'all', '-j', jobId, '-o', SQUEUE_FORMAT]);
    if (result.code !== 0 && !/invalid job id/i.test(result.stderr)) throw new Error(slurmMessage(result));
    return parseSqueue(result.stdout).find((job) => job.jobId === jobId);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#listeners.clear();
  }

  #schedule(ms: number): void {
    if (this.#closed || this.#polling || this.#listeners.size === 0) return;
    if (this.#timer && ms > 0) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#poll(), ms);
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    this.#polling = true;
    try {
      const ids = [...this.#listeners.keys()];
      if (ids.length === 0) return;
      let jobs: JobInfo[] | undefined;
      try {
        const result = await this.#commands.run('squeue', ['-h', '-t', 'all', '-j', ids.join(','), '-o', SQUEUE_FORMAT]);
        // squeue refuses the whole list when one id is unknown: ask job by job then.
        jobs = result.code === 0 ? parseSqueue(result.stdout) : await this.#oneByOne(ids);
      } catch {
        jobs = undefined; // slurmctld unreachable or slow: try again next round
      }
      if (jobs) {
        const byId = new Map(jobs.map((job) => [job.jobId, job]));
        for (const id of ids) this.#listeners.get(id)?.(byId.get(id));
      }
    } finally {
      this.#polling = false;
      this.#schedule(this.#pollMs);
    }
  }

  async #oneByOne(ids: readonly string[]): Promise<JobInfo[]> {
    const jobs: JobInfo[] = [];
    for (const id of ids) {
      const job = await this.query(id);
      if (job) jobs.push(job);
    }
    return jobs;
  }
}
