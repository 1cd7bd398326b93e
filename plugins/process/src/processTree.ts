import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { TetherError, normalizeSignal } from '@tether/core/lite';

/** The variable every execution's environment carries, so that escaped descendants can be found. */
export const EXEC_ID_VARIABLE = 'TETHER_EXEC_ID';

/**
 * Pids of live processes that belong to an execution: members of process group `pgid`, plus
 * (Linux) every process whose initial environment holds `TETHER_EXEC_ID=<execId>`, which finds
 * descendants that left the group (`setsid`, daemons). Zombies are skipped: they are already dead.
 *
 * On Linux this reads `/proc`; a process's environment is readable only for our own uid (or as
 * root), and one that cleared its environment before `exec` is found only through its group.
 * Elsewhere it asks `ps` for the group's members only.
 */
export async function findSurvivors(pgid: number | null, execId: string): Promise<number[]> {
  const pids = process.platform === 'linux' ? await scanProc(pgid, execId) : await groupMembersFromPs(pgid);
  return pids.sort((a, b) => a - b);
}

async function scanProc(pgid: number | null, execId: string): Promise<number[]> {
  const marker = Buffer.from(`${EXEC_ID_VARIABLE}=${execId}\0`);
  const names = await readdir('/proc');
  const found: number[] = [];
  await Promise.all(
    names.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      const pid = Number(name);
      if (pid === process.pid) return;
      const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => undefined);
      if (stat === undefined) return; // gone meanwhile
      // The command name in parentheses may hold spaces and parentheses: parse after the last one.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' || state === 'X' || state === 'x') return;
      if (pgid !== null && Number(pgrp) === pgid) {
        found.push(pid);
        return;
      }
      const environ = await readFile(`/proc/${pid}/environ`).catch(() => undefined);
      if (environ && hasEntry(environ, marker)) found.push(pid);
    }),
  );
  return found;
}

/** True if the NUL-separated `environ` block has the entry `marker` (which ends with NUL). */
function hasEntry(environ: Buffer, marker: Buffer): boolean {
  for (let at = environ.indexOf(marker); at !== -1; at = environ.indexOf(marker, at + 1)) {
    if (at === 0 || environ[at - 1] === 0) return true;
  }
  return false;
}

function groupMembersFromPs(pgid: number | null): Promise<number[]> {
  if (pgid === null) return Promise.resolve([]);
  return new Promise((resolve) => {
    execFile('ps', ['-A', '-o', 'pid=', '-o', 'pgid=', '-o', 'stat='], { timeout: 10_000 }, (error, stdout) => {
      if (error) return resolve([]);
      const pids: number[] = [];
      for (const line of stdout.split('\n')) {
        const [pid, group, stat] = line.trim().split(/\s+/);
        if (Number(group) === pgid && !stat?.startsWith('Z') && Number(pid) !== process.pid) pids.push(Number(pid));
      }
      resolve(pids);
    });
  });
}

/**
 * Sends `signal` to process group `pgid`. A group that is already gone is not an error; a group
 * none of whose members we may signal fails with `PERMISSION_DENIED`.
 */
export function signalGroup(pgid: number, signal: string): void {
  const name = normalizeSignal(signal);
  // kill(-1) and kill(0) would reach every process we may signal, or our own group.
  if (!Number.isInteger(pgid) || pgid < 2) throw new TetherError('INTERNAL', `refusing to signal process group ${pgid}`);
  try {
    process.kill(-pgid, name);
  } catch (error) {
    throwUnlessGone(error, [pgid]);
  }
}

/**
 * Sends `signal` to each pid (this process is skipped). Pids already gone are ignored; pids we
 * may not signal fail with `PERMISSION_DENIED` after all others were signalled.
 */
export function signalPids(pids: readonly number[], signal: string): void {
  const name = normalizeSignal(signal);
  if (!Array.isArray(pids) || !pids.every((pid) => Number.isInteger(pid) && pid >= 2)) {
    throw new TetherError('INVALID_ARGUMENT', 'pids must be integers greater than 1', { pids });
  }
  const refused: number[] = [];
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EPERM') refused.push(pid);
      else throwUnlessGone(error, [pid]);
    }
  }
  if (refused.length > 0) throwUnlessGone(Object.assign(new Error('kill EPERM'), { code: 'EPERM' }), refused);
}

function throwUnlessGone(error: unknown, pids: number[]): void {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ESRCH') return;
  if (code === 'EPERM') {
    throw new TetherError('PERMISSION_DENIED', `not permitted to signal ${pids.join(', ')}`, { pids }, { cause: error });
  }
  throw new TetherError('INTERNAL', `could not signal ${pids.join(', ')}: ${(error as Error).message}`, { pids }, { cause: error });
}
