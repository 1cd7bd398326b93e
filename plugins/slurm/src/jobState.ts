import { constants } from 'node:os';
import type { ProcessExit } from '@tether/core';

/** One job as `squeue -o '%i|%T|%r|%N|%P'` prints it. */
export interface JobInfo {
  readonly jobId: string;
  /** Slurm's state: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL… */
  readonly state: string;
  readonly reason: string;
  readonly nodes: string;
  readonly partition: string;
}

export const SQUEUE_FORMAT = '%i|%T|%r|%N|%P';

export function parseSqueue(stdout: string): JobInfo[] {
  const jobs: JobInfo[] = [];
  for (const line of stdout.split('\n')) {
    const [jobId, state, reason, nodes, partition] = line.trim().split('|');
    if (!jobId || !state) continue;
    jobs.push({ jobId, state, reason: reason ?? '', nodes: nodes ?? '', partition: partition ?? '' });
  }
  return jobs;
}

export type JobPhase = 'queued' | 'running' | 'ended';

/** Where a Slurm state puts an execution. */
export function phaseOf(state: string): JobPhase {
  switch (state) {
    case 'PENDING':
    case 'REQUEUED':
    case 'REQUEUE_FED':
    case 'REQUEUE_HOLD':
    case 'RESV_DEL_HOLD':
      return 'queued';
    case 'RUNNING':
    case 'CONFIGURING':
    case 'SUSPENDED':
    case 'STOPPED':
    case 'SIGNALING':
    case 'STAGE_OUT':
    case 'RESIZING':
    // The batch script has ended; Slurm is still killing what is left of the job's processes.
    case 'COMPLETING':
      return 'running';
    default:
      return 'ended';
  }
}

/** `ExitCode=N:S` of `scontrol show job`: the exit status and the signal that ended it (0 if none). */
export function parseExitCode(text: string): { code: number; signal: number } | null {
  const match = /(?:^|\s)ExitCode=(\d+):(\d+)/.exec(text);
  return match ? { code: Number(match[1]), signal: Number(match[2]) } : null;
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * The execution's end from the job's final state and exit code: COMPLETED/FAILED → the exit
 * code (or the signal), CANCELLED → cancelled (unless tether's own signal ended it: then as that signal), TIMEOUT/DEADLINE → timed out, NODE_FAIL,
 * PREEMPTED, BOOT_FAIL → lost with the reason.
 */
export function exitOf(state: string, reason: string, exit: { code: number; signal: number } | null, signalledByUs = false): ProcessExit {
  const status: Pick<ProcessExit, 'exitCode' | 'signal'> =
    exit === null ? { exitCode: null, signal: null } : exit.signal > 0 ? { exitCode: null, signal: signalNames.get(exit.signal) ?? `SIG${exit.signal}` } : { exitCode: exit.code, signal: null };
  const why = reason && reason !== 'None' ? ` (${reason})` : '';
  switch (state) {
    case 'CANCELLED':
      // Slurm calls a job ended by any scancel CANCELLED; only one tether did not signal was cancelled by someone else.
      return signalledByUs ? status : { ...status, stopReason: 'cancel' };
    case 'TIMEOUT':
    case 'DEADLINE':
      return { ...status, stopReason: 'timeout' };
    case 'NODE_FAIL':
    case 'PREEMPTED':
    case 'BOOT_FAIL':
      return { ...status, lost: `Slurm ended the job ${state}${why}` };
    default:
      return status;
  }
}
