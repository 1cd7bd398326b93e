import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import type { Channel, MachineHealth, MachineInfo } from '@tether/core';
import { RemoteMachine, TetherError, isTetherError } from '@tether/core';
import { connectWs, readToken } from '@tether/transport-ws';
import { CliError, EXIT_CODES } from './cliError.js';
import type { DaemonFiles } from './paths.js';

/** `daemon serve`'s exit code when another daemon holds the data dir (STORE_LOCKED). */
const LOCKED_EXIT = EXIT_CODES['STORE_LOCKED'];
/** The background daemon's log is moved aside (to daemon.log.1) when it grows past this at a start. */
const MAX_LOG_BYTES = 10 * 1024 * 1024;

export interface LocalDaemonOptions {
  readonly files: DaemonFiles;
  /** The program and arguments that run `tether daemon serve --data-dir <dir>` (started detached). */
  readonly serveCommand: readonly [string, ...string[]];
  /** Give up waiting for a started daemon after this long. Default 30 s. */
  readonly startTimeoutMs?: number;
  /** Called once when a daemon has to be started (for a spinner). */
  readonly onStarting?: () => void;
}

/**
 * The `local` machine: a daemon on a Unix socket in the user's state directory, started on
 * demand in the background and left running, so executions outlive the CLI call that started
 * them. Two CLI calls racing to start it end with one daemon: the second daemon cannot take the
 * LevelDB lock and exits, and both calls connect to the first.
 */
export async function connectLocalDaemon(options: LocalDaemonOptions): Promise<{ channel: Channel; token: string; started: boolean }> {
  try {
    return { ...(await connectOnce(options.files)), started: false };
  } catch (error) {
    if (!isAbsent(error)) throw error;
  }
  options.onStarting?.();
  const { child, logStart } = await startInBackground(options);
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  let childExit: { code: number | null; at: number } | undefined;
  child.once('exit', (code) => (childExit = { code, at: Date.now() }));
  for (let wait = 20; ; wait = Math.min(wait * 1.5, 200)) {
    try {
      return { ...(await connectOnce(options.files)), started: true };
    } catch (error) {
      if (!isAbsent(error)) throw error;
    }
    // Our daemon exited. If it lost the race for the store's lock (exit 11, STORE_LOCKED), the
    // winner will answer soon; any other exit is a failure to report now.
    const gaveUp = childExit !== undefined && (childExit.code !== LOCKED_EXIT || Date.now() - childExit.at > 10_000);
    if (Date.now() > deadline || gaveUp) throw await startFailure(options.files.log, logStart, childExit?.code);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** Connects to a running local daemon; fails (`isAbsent`) when none runs. */
export async function connectOnce(files: DaemonFiles): Promise<{ channel: Channel; token: string }> {
  const token = await readToken(files.token);
  return { channel: await connectWs(files.socket, { token }), token };
}

/** True for "no daemon there": no token file yet, no socket, or nobody accepting on it. */
export function isAbsent(error: unknown): boolean {
  if (isTetherError(error, 'PATH_NOT_FOUND')) return true;
  return isTetherError(error, 'CONNECTION_LOST') && ['ENOENT', 'ECONNREFUSED'].includes(String(error.details['errno']));
}

async function startInBackground(options: LocalDaemonOptions) {
  const { files } = options;
  await mkdir(files.dataDir, { recursive: true, mode: 0o700 });
  if (((await stat(files.log).catch(() => undefined))?.size ?? 0) > MAX_LOG_BYTES) await rename(files.log, `${files.log}.1`).catch(() => undefined);
  const log = await open(files.log, 'a', 0o600);
  try {
    const logStart = (await log.stat()).size;
    const [program, ...args] = options.serveCommand;
    const child = spawn(program, args, { detached: true, stdio: ['ignore', log.fd, log.fd], cwd: homedir(), env: process.env });
    child.unref();
    return { child, logStart };
  } finally {
    await log.close();
  }
}

/**
 * Why the daemon just started did not come up, from what it wrote to its log since `from`: its
 * own JSON error when it printed one (a bad config file, a data dir it cannot use…).
 */
async function startFailure(log: string, from: number, exitCode: number | null | undefined): Promise<CliError> {
  const lines = (await readFile(log).catch(() => Buffer.alloc(0))).subarray(from).toString('utf8').trim().split('\n').filter(Boolean);
  const reported = lines.reverse().find((l) => l.startsWith('{"error":'));
  if (reported) {
    try {
      const { error } = JSON.parse(reported) as { error: { code: string; message: string; hint?: string } };
      return new CliError(error.code, `the local daemon could not start: ${error.message}`, { hint: error.hint ?? `read ${log}` });
    } catch {
      // not JSON after all: report the lines as they are
    }
  }
  const tail = lines.slice(0, 3).reverse().join(' | ').slice(0, 600);
  return new CliError('CONNECTION_LOST', `connection refused: the local daemon did not start${exitCode != null ? ` (it exited with code ${exitCode})` : ''}${tail ? `: ${tail}` : ''}`, {
    hint: `read ${log}, or run it in the foreground: tether daemon serve`,
  });
}

/** `daemon status`: what a running local daemon says about itself, or `running: false`. */
export async function localDaemonStatus(files: DaemonFiles): Promise<{ running: false } | { running: true; info: MachineInfo; health: MachineHealth }> {
  let connected;
  try {
    connected = await connectOnce(files);
  } catch (error) {
    if (isAbsent(error)) return { running: false };
    throw error;
  }
  let channel: Channel | undefined = connected.channel;
  const machine = new RemoteMachine({
    name: 'local',
    connect: async () => {
      const first = channel;
      channel = undefined;
      if (!first) throw new TetherError('CONNECTION_LOST', 'connection reset by peer: the local daemon closed the connection');
      return first;
    },
    reconnect: { giveUpAfterMs: 0 },
  });
  try {
    const [info, health] = await Promise.all([machine.info(), machine.health()]);
    return { running: true, info, health };
  } finally {
    await machine.close();
  }
}

/** The pid in the daemon's pid file, if there is one and that process is alive. */
export async function pidFromFile(files: DaemonFiles): Promise<number | undefined> {
  const text = await readFile(files.pid, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
