import { readdirSync, readFileSync } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Observable, Subject } from 'rxjs';
import { TetherError, type BackendRef, type OutputChunk, type ProcessExit, type QueueUpdate, type RunningProcess } from '@tether/core';
import { exitOf, parseExitCode, phaseOf, type JobInfo } from './jobState.js';
import type { JobWatcher } from './jobWatcher.js';
import type { SlurmCommands } from './slurmCommands.js';

export interface JobFiles {
  readonly stdout: string;
  readonly stderr: string;
  /** Written by the job script when the program could not be started on the node. */
  readonly failed: string;
}

export interface JobProcessOptions {
  readonly jobId: string;
  /** The tether execution id (the job's processes carry it as TETHER_EXEC_ID). */
  readonly execId: string;
  readonly files: JobFiles;
  readonly commands: SlurmCommands;
  readonly watcher: JobWatcher;
  readonly tailMs: number;
  /** Output bytes already recorded, per stream: reading starts there. */
  readonly resume?: { readonly stdout: number; readonly stderr: number };
  /** Re-attaching to a job already known to have started: where it runs (or ran). */
  readonly alreadyRunning?: BackendRef;
}

/** Consecutive rounds in which Slurm does not list the job before it counts as lost. */
const MISSES_BEFORE_LOST = 8;
const READ_CHUNK = 1024 * 1024;

/**
 * A Slurm job seen as a RunningProcess: its state from the watcher, its output read from its
 * files as they grow, signals and cancel through `scancel`.
 */
export class JobProcess implements RunningProcess {
  readonly pid = null;
  readonly pgid = null;
  readonly ref: BackendRef;
  readonly queue$ = new Subject<QueueUpdate>();
  readonly running: Promise<BackendRef | undefined>;
  readonly exit: Promise<ProcessExit>;
  readonly output$: Observable<OutputChunk>;

  readonly #options: JobProcessOptions;
  readonly #execId: string;
  #nodes = '';
  /** A signal other than TERM/KILL asked for while the job was queued: delivered once it runs. */
  #heldSignal: string | undefined;
  #phase: 'queued' | 'running' | 'ended' = 'queued';
  #reason: string | null = null;
  #misses = 0;
  /** `running` has resolved. */
  #ran = false;
  #paused = false;
  #signalled = false;
  #ended = false;
  /** Let go of by a daemon that stops: the job runs on, the next daemon re-attaches by job id. */
  #detached = false;
  #wake: (() => void) | undefined;
  #resolveRunning!: (ref: BackendRef | undefined) => void;
  #resolveExit!: (exit: ProcessExit) => void;
  readonly #unwatch: () => void;

  constructor(options: JobProcessOptions) {
    this.#options = options;
    this.ref = { jobId: options.jobId };
    this.#execId = options.execId;
    this.running = new Promise((resolve) => (this.#resolveRunning = resolve));
    this.exit = new Promise((resolve) => (this.#resolveExit = resolve));
    if (options.alreadyRunning) {
      this.#phase = 'running';
      this.#ran = true;
      this.#nodes = options.alreadyRunning['nodes'] ?? '';
      this.queue$.complete();
      this.#resolveRunning(options.alreadyRunning);
    } else {
      void this.#watchForOutput();
    }
    this.output$ = new Observable<OutputChunk>((subscriber) => {
      let stopped = false;
      void this.#tail((chunk) => subscriber.next(chunk), () => stopped || this.#detached).then(
        () => {
          if (!this.#detached) subscriber.complete();
        },
        (error: unknown) => subscriber.error(error),
      );
      return () => {
        stopped = true;
        this.#wake?.();
      };
    });
    this.#unwatch = options.watcher.watch(options.jobId, (info) => void this.#update(info));
  }

  #update(info: JobInfo | undefined): void {
    if (this.#phase === 'ended' || this.#detached) return;
    if (!info) {
      if (++this.#misses >= MISSES_BEFORE_LOST) void this.#end(undefined);
      return;
    }
    this.#misses = 0;
    const phase = phaseOf(info.state);
    if (phase === 'queued') {
      const reason = info.reason || null;
      if (reason !== this.#reason) {
        this.#reason = reason;
        this.queue$.next({ reason });
      }
      return;
    }
    if (hasRun(info)) this.#nodes = info.nodes;
    if (phase === 'running' || hasRun(info)) this.#markRunning({ nodes: info.nodes, partition: info.partition });
    if (phase === 'ended') void this.#end(info);
  }

  /** The job runs (seen in squeue, or by its output): `running` resolves, a held signal is sent. */
  #markRunning(ref: BackendRef): void {
    if (this.#ran) return;
    this.#ran = true;
    if (this.#phase === 'queued') this.#phase = 'running';
    if (this.#heldSignal) this.signal(this.#heldSignal);
    this.queue$.complete();
    this.#resolveRunning(ref);
  }

  /**
   * While the job waits, its output files are watched too: output there means it runs, and is
   * noticed sooner than the next squeue round (a stat is cheaper than asking slurmctld).
   */
  async #watchForOutput(): Promise<void> {
    const from = { stdout: this.#options.resume?.stdout ?? 0, stderr: this.#options.resume?.stderr ?? 0 };
    while (!this.#ran && this.#phase !== 'ended' && !this.#detached) {
      const [out, err] = await Promise.all([fileSize(this.#options.files.stdout), fileSize(this.#options.files.stderr)]);
      if (out > from.stdout || err > from.stderr) {
        const where = await this.#whereItRuns();
        if (where.nodes) this.#nodes = where.nodes;
        this.#markRunning(where);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.#options.tailMs));
    }
  }

  /** The job's nodes and partition from `scontrol show job` (empty when Slurm does not say). */
  async #whereItRuns(shown?: string): Promise<BackendRef> {
    const text = shown ?? (await this.#options.commands.run('scontrol', ['show', 'job', '-o', this.#options.jobId]).catch(() => undefined))?.stdout ?? '';
    const nodes = /(?:^|\s)NodeList=(\S+)/.exec(text)?.[1];
    const partition = /(?:^|\s)Partition=(\S+)/.exec(text)?.[1];
    return { ...(nodes && nodes !== '(null)' ? { nodes } : {}), ...(partition ? { partition } : {}) };
  }

  async #end(info: JobInfo | undefined): Promise<void> {
    if (this.#phase === 'ended' || this.#detached) return;
    this.#phase = 'ended';
    this.#unwatch();
    this.queue$.complete();
    let exit: ProcessExit;
    if (!info) {
      exit = { exitCode: null, signal: null, lost: `Slurm no longer knows job ${this.#options.jobId}` };
    } else {
      const shown = await this.#options.commands.run('scontrol', ['show', 'job', '-o', this.#options.jobId]).catch(() => undefined);
      exit = exitOf(info.state, info.reason, shown ? parseExitCode(shown.stdout) : null, this.#signalled);
      // Ended between two rounds without being seen running: it ran if Slurm gave it nodes or it wrote output.
      if (!this.#ran) {
        const where = await this.#whereItRuns(shown?.stdout);
        const wrote = (await fileSize(this.#options.files.stdout)) > (this.#options.resume?.stdout ?? 0) || (await fileSize(this.#options.files.stderr)) > (this.#options.resume?.stderr ?? 0);
        if (where.nodes || wrote) {
          if (where.nodes) this.#nodes = where.nodes;
          this.#markRunning(where);
        }
      }
      const failed = await readFile(this.#options.files.failed, 'utf8').catch(() => undefined);
      if (failed !== undefined) {
        const [code, ...message] = failed.trim().split('\n');
        exit = { ...exit, failed: { code: code || 'SPAWN_FAILED', message: message.join(' ') || 'the program could not be started' } };
      }
    }
    this.#ended = true;
    this.#wake?.();
    this.#resolveExit(exit);
  }

  /** Reads both output files from the resume offsets until the job has ended and they are drained. */
  async #tail(emit: (chunk: OutputChunk) => void, stopped: () => boolean): Promise<void> {
    const streams = [
      { stream: 'stdout' as const, path: this.#options.files.stdout, offset: this.#options.resume?.stdout ?? 0, handle: undefined as FileHandle | undefined },
      { stream: 'stderr' as const, path: this.#options.files.stderr, offset: this.#options.resume?.stderr ?? 0, handle: undefined as FileHandle | undefined },
    ];
    try {
      for (;;) {
        if (stopped()) return;
        const endedBefore = this.#ended;
        let progressed = false;
        if (!this.#paused) {
          for (const s of streams) {
            s.handle ??= await open(s.path, 'r').catch(() => undefined);
            if (!s.handle) continue;
            for (let round = 0; round < 4 && !this.#paused; round++) {
              const buffer = Buffer.allocUnsafe(READ_CHUNK);
              const { bytesRead } = await s.handle.read(buffer, 0, READ_CHUNK, s.offset);
              if (bytesRead === 0) break;
              s.offset += bytesRead;
              progressed = true;
              emit({ stream: s.stream, data: new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead) });
              if (bytesRead < READ_CHUNK) break;
            }
          }
        }
        // Done once a full pass that began after the job ended found nothing new.
        if (endedBefore && !progressed && !this.#paused) return;
        if (!progressed || this.#paused) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => resolve(), this.#options.tailMs);
            this.#wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.#wake = undefined;
        }
      }
    } finally {
      for (const s of streams) await s.handle?.close().catch(() => undefined);
    }
  }

  pauseOutput(): void {
    this.#paused = true;
  }

  resumeOutput(): void {
    this.#paused = false;
    this.#wake?.();
  }

  async write(): Promise<void> {
    throw new TetherError('STDIN_CLOSED', 'a Slurm job has no stdin');
  }

  async closeStdin(): Promise<void> {}

  /**
   * A job still queued is cancelled (`scancel`); a running one gets the signal on every process
   * of its batch step (`scancel --signal=NAME --full`), as a process group would.
   */
  signal(signal: string): void {
    const name = signal.replace(/^SIG/, '');
    if (this.#phase === 'queued' && name !== 'TERM' && name !== 'KILL') {
      this.#heldSignal = signal;
      return;
    }
    this.#signalled = true;
    const args = this.#phase === 'queued' ? [this.#options.jobId] : [`--signal=${name}`, '--full', this.#options.jobId];
    void this.#scancel(args);
  }

  /** scancel, tried again a few times while it fails (a job just started may not have its batch step yet). */
  async #scancel(args: readonly string[]): Promise<void> {
    for (let attempt = 0; attempt < 20 && this.#phase !== 'ended'; attempt++) {
      const result = await this.#options.commands.run('scancel', args).catch(() => undefined);
      if (result?.code === 0 && !/error/i.test(result.stderr)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  resize(): void {
    throw new TetherError('NOT_A_TTY', 'a Slurm job has no terminal');
  }

  /**
   * The daemon stops and leaves the job to Slurm: watching and reading stop here, `exit` and
   * `output$` stay open (nothing is recorded as ended), and the next daemon's `reattach` goes on
   * from the recorded output offsets by job id.
   */
  async detach(): Promise<void> {
    if (this.#phase === 'ended') return;
    this.#detached = true;
    this.#unwatch();
    this.#wake?.();
  }

  /**
   * Slurm cleans up the job's processes itself — except, under proctrack/linuxproc, those that
   * were re-parented away from its step (a child of a killed shell). When the job ran on this
   * machine those are found here by the TETHER_EXEC_ID the job script sets (Linux /proc); on
   * other nodes Slurm's cgroup process tracking is what catches them.
   */
  async survivors(): Promise<number[]> {
    if (this.#nodes !== localNode) return [];
    return taggedProcesses(this.#execId);
  }

  signalPids(pids: readonly number[], signal: string): void {
    if (this.#nodes !== localNode) return;
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

const localNode = hostname().split('.')[0]!;

/** Live (non-zombie) processes of this machine whose environment carries TETHER_EXEC_ID=id. */
function taggedProcesses(id: string): number[] {
  const tag = `TETHER_EXEC_ID=${id}`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.charAt(stat.lastIndexOf(')') + 2) === 'Z') continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(tag)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** A job that ended having run at all (it was given nodes), as opposed to one cancelled while pending. */
function hasRun(info: JobInfo): boolean {
  return info.nodes !== '' && info.nodes !== '(null)';
}
