// What a supervisor leaves in its directory so that a restarted daemon can find it again:
// `<dir>/<name>.json` per execution (name = a hash of the execution id, so any id fits in a
// socket path), the spool `<dir>/<name>.spool` and the socket `<dir>/<name>.sock`.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** The format of the record file; a daemon refuses records of another format. */
export const RECORD_VERSION = 1;

export interface ExitInfo {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stops: Array<{ signal: string; reason: 'timeout' | 'cancel' }>;
  readonly survivors: number[];
  /** Epoch ms of the reap. */
  readonly endedAt: number;
}

export interface SupervisorRecord {
  readonly version: number;
  readonly execId: string;
  readonly supervisor: { readonly pid: number; readonly startTime: string };
  /** null while the command is being started. */
  readonly child: { readonly pid: number; readonly startTime: string | null } | null;
  readonly socket: string;
  readonly exit?: ExitInfo;
}

export function recordName(execId: string): string {
  return createHash('sha256').update(execId).digest('hex').slice(0, 24);
}

export function paths(dir: string, execId: string): { record: string; spool: string; socket: string } {
  const name = recordName(execId);
  return { record: join(dir, `${name}.json`), spool: join(dir, `${name}.spool`), socket: join(dir, `${name}.sock`) };
}

/** Writes the record atomically (temp file, rename), and with `durable` fsynced first. */
export function writeRecord(path: string, record: SupervisorRecord, durable = true): void {
  const temp = `${path}.${process.pid}.tmp`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(record));
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

export function readRecord(path: string): SupervisorRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(path, 'utf8')) as SupervisorRecord;
    return record && record.version === RECORD_VERSION && typeof record.execId === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A process's start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`), or null when
 * it does not exist or is a zombie. With the pid it names one process: a reused pid has another.
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** True while the process recorded as (`pid`, `startTime`) is alive. */
export function isSameProcess(pid: number, startTime: string | null): boolean {
  if (!Number.isInteger(pid) || pid < 2) return false;
  const now = processStartTime(pid);
  return now !== null && (startTime === null || now === startTime);
}
