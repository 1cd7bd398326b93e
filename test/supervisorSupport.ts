// A daemon as a real process (transport-ws's built daemonMain.js with the process plugin, so
// every execution runs under a supervisor), to SIGKILL and start again on the same data dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, toArray } from 'rxjs';
import type { RemoteMachine, StoredEvent } from '@tether/core';
import { liveProcesses } from '@tether/core/testing';
import { readToken, remoteMachine } from '@tether/transport-ws';

export const DAEMON_MAIN = fileURLToPath(new URL('../packages/transport-ws/dist/daemonMain.js', import.meta.url));

export interface RunningDaemon {
  readonly child: ChildProcess;
  readonly machine: RemoteMachine;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export interface LaunchedDaemon {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once it serves (rejects if it exited first). */
  readonly ready: Promise<RunningDaemon>;
}

/** Starts a daemon serving `dataDir` on `<dataDir>/../daemon.sock`; `ready` connects to it. */
export function launchDaemonProcess(dataDir: string, options: { readonly main?: string } = {}): LaunchedDaemon {
  const socket = join(dataDir, '..', 'daemon.sock');
  const args = [options.main ?? DAEMON_MAIN, '--listen', socket, '--data-dir', dataDir, '--plugin', '@tether/plugin-process'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = (async () => {
    const line = await new Promise<{ tokenFile: string }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
      });
      void exited.then(({ code, signal }) => reject(new Error(`daemon exited (${code ?? signal}) before it was ready: ${stderr}`)));
    });
    const machine = remoteMachine(socket, { token: await readToken(line.tokenFile), reconnect: { giveUpAfterMs: 300 } });
    return { child, machine, exited, stderr: () => stderr };
  })();
  ready.catch(() => undefined);
  return { child, exited, ready };
}

/** Starts a daemon serving `dataDir` on `<dataDir>/../daemon.sock` and connects to it. */
export function startDaemonProcess(dataDir: string, options: { readonly main?: string } = {}): Promise<RunningDaemon> {
  return launchDaemonProcess(dataDir, options).ready;
}

/** SIGKILLs the daemon and waits until it is gone. */
export async function killDaemon(daemon: RunningDaemon): Promise<void> {
  daemon.child.kill('SIGKILL');
  await daemon.exited;
  await daemon.machine.close().catch(() => undefined);
}

/** Every event of an execution (it must have ended). */
export function eventsOf(machine: RemoteMachine, id: string): Promise<StoredEvent[]> {
  return lastValueFrom(machine.exec.follow(id, 0).pipe(toArray()));
}

/** Checks the stream: seqs 1..n without a gap or repeat, one terminal event, last. */
export function streamProblems(events: readonly StoredEvent[]): string[] {
  const problems: string[] = [];
  events.forEach((event, i) => {
    if (event.seq !== i + 1) problems.push(`seq ${event.seq} at position ${i + 1}`);
  });
  const terminal = events.filter((e) => e.type === 'ExecutionExited' || e.type === 'ExecutionFailed' || e.type === 'ExecutionLost');
  if (terminal.length !== 1) problems.push(`${terminal.length} terminal events`);
  else if (events.at(-1) !== terminal[0]) problems.push('the terminal event is not last');
  return problems;
}

/** sha256 of what the execution recorded on `stream`. */
export function recordedHash(events: readonly StoredEvent[], stream: 'stdout' | 'stderr' | 'pty' = 'stdout'): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const event of events) {
    if (event.type !== 'OutputProduced' || event.data.stream !== stream) continue;
    hash.update(event.data.data);
    bytes += event.data.data.byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Pids of live supervisors whose directory is under `root` (read from /proc). */
export function supervisorsUnder(root: string): number[] {
  return liveProcesses((pid) => {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const dir = argv[argv.indexOf('--dir') + 1];
    return argv.some((a) => a.endsWith('supervisor/main.js')) && dir?.startsWith(root) === true;
  });
}
