import { constants } from 'node:os';
import { durationMs, type ExecutionState } from '@tether/core';
import { rfc3339 } from './duration.js';

/**
 * The contract's `result` object (`exec result`, `exec list`). Statuses are `running` and
 * `finished` as callers expect, plus `queued` while a GPU gate holds an execution.
 * `end_reason` and `exit_code` appear once it has finished; `signal` (the signal that ended
 * it) and `error` (why it failed to start or was lost) only when they apply.
 */
export interface ResultJson {
  readonly exec_id: string;
  readonly machine: string;
  readonly status: 'queued' | 'running' | 'finished';
  readonly end_reason?: string;
  readonly exit_code?: number | null;
  readonly signal?: string;
  readonly error?: string;
  readonly pid: number | null;
  readonly cmd: string;
  readonly cwd: string | null;
  readonly started_at: string | null;
  readonly finished_at?: string | null;
  readonly duration_ms: number;
  readonly stdout_bytes: number;
  readonly stderr_bytes: number;
  readonly last_seq: number;
  /** The variables given to the execution (`--env`, and defaults such as PYTHONUNBUFFERED), as codexd shows them. */
  readonly env?: Readonly<Record<string, string>>;
  /** With --project: codex-remote's names for the project and the ref given. */
  readonly project_id?: string;
  readonly ref?: string;
  /** With --project: the project, the ref given and the commit it ran at. */
  readonly project?: { readonly name: string; readonly ref: string; readonly commit: string };
  /** With --notify-cmd/--notify-url: the outcome of each (empty until delivered or given up). */
  readonly notifications?: readonly NotificationJson[];
  /** On a backend other than `process` (`slurm`): its name, its handle (`{"jobId","nodes","partition"}`). */
  readonly backend?: string;
  readonly backend_ref?: Readonly<Record<string, string>>;
  /** While queued: why the backend holds it (Slurm's reason: `Resources`, `Priority`…), when it says. */
  readonly queue_reason?: string;
}

export interface NotificationJson {
  readonly channel: 'command' | 'url';
  readonly delivered: boolean;
  readonly attempts: number;
  readonly at: string | null;
  /** `exit 0`, `HTTP 204`; or why the last try failed. */
  readonly detail: string;
}

/** `defaultCwd`: where the execution ran when its spec names no cwd (the daemon's cwd). */
export function resultJson(state: ExecutionState, machine: string, defaultCwd: string | null, now = Date.now()): ResultJson {
  const finished = state.status === 'finished';
  return {
    exec_id: state.id,
    machine,
    status: state.status,
    ...(finished ? { end_reason: state.endReason ?? 'lost', exit_code: state.exitCode } : {}),
    ...(state.signal ? { signal: state.signal } : {}),
    ...(state.error ? { error: state.error.message } : {}),
    pid: state.pid,
    cmd: commandText(state),
    cwd: state.spec?.cwd ?? defaultCwd,
    started_at: rfc3339(state.startedAt),
    ...(finished ? { finished_at: rfc3339(state.finishedAt) } : {}),
    duration_ms: durationMs(state, now),
    stdout_bytes: state.bytes.stdout + state.bytes.pty,
    stderr_bytes: state.bytes.stderr,
    last_seq: state.lastSeq,
    ...envOf(state),
    ...(state.spec?.labels?.['tether.project'] !== undefined ? { project_id: state.spec.labels['tether.project'], ref: state.spec.labels['tether.ref'] ?? '' } : {}),
    ...(state.spec?.labels?.['tether.project'] !== undefined
      ? { project: { name: state.spec.labels['tether.project'], ref: state.spec.labels['tether.ref'] ?? '', commit: state.spec.labels['tether.commit'] ?? '' } }
      : {}),
    ...(state.spec?.notify
      ? { notifications: (state.notifications ?? []).map((n) => ({ channel: n.channel, delivered: n.delivered, attempts: n.attempts, at: rfc3339(n.at), detail: n.detail })) }
      : {}),
    ...(state.spec?.backend !== undefined && state.spec.backend !== 'process' ? { backend: state.spec.backend } : {}),
    ...(state.backendRef ? { backend_ref: state.backendRef } : {}),
    ...(state.status === 'queued' && state.queueReason ? { queue_reason: state.queueReason } : {}),
  };
}

/** The execution's own variables (those of a project's wrapper left out). */
function envOf(state: ExecutionState): { env?: Record<string, string> } {
  const entries = Object.entries(state.spec?.env ?? {}).filter(([k]) => !k.startsWith('TETHER_PROJECT'));
  return entries.length > 0 ? { env: Object.fromEntries(entries) } : {};
}

/** The command as the user gave it: the shell string, or the argv quoted for a shell. */
export function commandText(state: ExecutionState): string {
  const spec = state.spec;
  if (!spec) return '';
  // A project execution runs a wrapper; the label keeps the command the user gave.
  const given = spec.labels?.['tether.cmd'];
  if (given !== undefined) return given;
  if (spec.command !== undefined) return spec.command;
  return (spec.argv ?? []).map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/**
 * The exit code `exec run` and `exec watch` end with, like a shell would: the command's own
 * code; 128+N when signal N ended it (cancelled included); 124 when it timed out (as
 * `timeout(1)`); 127 when it could not start; 255 when it was lost (the daemon restarted).
 */
export function commandExitCode(state: ExecutionState): number {
  switch (state.endReason) {
    case 'exited':
      return state.exitCode ?? 0;
    case 'timed_out':
      return 124;
    case 'failed_to_start':
      return 127;
    case 'lost':
      return 255;
    case 'signaled':
    case 'cancelled': {
      if (state.exitCode !== null) return state.exitCode;
      const number = state.signal ? (constants.signals as Record<string, number>)[state.signal] : undefined;
      return 128 + (number ?? 15);
    }
    default:
      return 0;
  }
}

/**
 * The `error` of `exec run`'s `finished` line, worded as codex-remote words it (skills match on
 * it): `exit status N` for a non-zero exit, `signal: SIGTERM` when a signal ended the command,
 * the reason when it failed to start or was lost; undefined when it exited 0.
 */
export function finishedError(state: ExecutionState): string | undefined {
  switch (state.endReason) {
    case 'exited':
      return state.exitCode ? `exit status ${state.exitCode}` : undefined;
    case 'signaled':
    case 'cancelled':
    case 'timed_out':
      if (state.exitCode !== null && state.exitCode !== 0) return `exit status ${state.exitCode}`;
      return state.signal ? `signal: ${state.signal}` : state.endReason.replace('_', ' ');
    case 'failed_to_start':
      return state.error?.message ?? 'failed to start';
    case 'lost':
      return state.error?.message ?? 'lost';
    default:
      return undefined;
  }
}
