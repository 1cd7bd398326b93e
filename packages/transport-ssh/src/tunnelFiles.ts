import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { TetherError, type MachineConfig } from '@tether/core';
import type { SshConnectOptions } from './sshConnect.js';

/** How the tunnel process opens its SSH connection: the JSON-able part of `SshConnectOptions`. */
export type TunnelSshOptions = Omit<SshConnectOptions, 'signal' | 'forwardAgent'>;

/** The files of one machine's tunnel, all in `<stateDir>/tunnels/` (mode 0700). */
export interface TunnelFiles {
  readonly dir: string;
  /** The Unix socket local clients connect to (mode 0600). */
  readonly socket: string;
  /** `TunnelState` as JSON (mode 0600), present while the tunnel runs. */
  readonly state: string;
  /** The remote daemon's token, cached for local clients (mode 0600), present while the tunnel runs. */
  readonly token: string;
  /** The tunnel process's stderr (JSON lines). */
  readonly log: string;
  /** Held (O_EXCL) only while a stale socket is being replaced. */
  readonly lock: string;
}

/** What a running tunnel writes about itself in its state file. */
export interface TunnelState {
  readonly pid: number;
  readonly socket: string;
  readonly machine: string;
  /** `tunnelConfigHash` of the machine config and SSH options the tunnel was started with. */
  readonly configHash: string;
  /** ISO time the tunnel process started. */
  readonly startedAt: string;
  /** `starting` while it connects, `ready` once it serves. */
  readonly status: 'starting' | 'ready';
  /** The cached token file, when the token was read from the machine (absent when the config holds the token). */
  readonly tokenFile?: string;
  /** How the tunnel reaches the daemon: a forwarded TCP channel, or the bridge command. */
  readonly route?: 'forward' | 'bridge';
}

/** Longest Unix socket path accepted (macOS allows 103 bytes, Linux 107). */
const MAX_SOCKET_PATH = 103;

/**
 * The tunnel files of `machine` under `stateDir`. A machine name that is not a plain file name
 * (letters, digits, `._-`, at most 64) is replaced by a hash of it.
 */
export function tunnelFiles(stateDir: string, machine: string): TunnelFiles {
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TetherError('INVALID_ARGUMENT', 'stateDir must be a directory path');
  if (typeof machine !== 'string' || machine.length === 0) throw new TetherError('INVALID_ARGUMENT', 'the machine needs a name');
  const dir = join(resolve(stateDir), 'tunnels');
  const stem = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(machine) ? machine : `m-${createHash('sha256').update(machine).digest('hex').slice(0, 16)}`;
  const socket = join(dir, `${stem}.sock`);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new TetherError('INVALID_ARGUMENT', `the tunnel socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes, which Unix sockets do not allow; use a shorter state directory`, {
      path: socket,
    });
  }
  return {
    dir,
    socket,
    state: join(dir, `${stem}.json`),
    token: join(dir, `${stem}.token`),
    log: join(dir, `${stem}.log`),
    lock: join(dir, `${stem}.lock`),
  };
}

const packageVersion = (JSON.parse(readFileSync(fileURLToPath(import.meta.resolve('@tether/transport-ssh/package.json')), 'utf8')) as { version: string }).version;

/**
 * A hash of everything that decides where and how a tunnel connects: the machine config, the
 * SSH options and this package's version. A tunnel whose hash differs from a client's is
 * replaced.
 */
export function tunnelConfigHash(machine: MachineConfig, ssh: TunnelSshOptions = {}): string {
  return createHash('sha256')
    .update(stableJson({ version: packageVersion, machine, ssh }))
    .digest('hex');
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The state file's content, or undefined when there is none or it is unreadable (a torn write cannot happen: it is renamed into place). */
export async function readTunnelState(files: TunnelFiles): Promise<TunnelState | undefined> {
  let text: string;
  try {
    text = await readFile(files.state, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as TunnelState;
    return Number.isInteger(state?.pid) && state.pid > 0 && typeof state.configHash === 'string' ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Writes `text` to `path` atomically (a temp file renamed into place), mode 0600. */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(text);
  } finally {
    await file.close();
  }
  await rename(temp, path);
}

/** Removes `path`; a missing file is fine. */
export async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** True when a process with this pid exists (it may belong to another user) and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A dead process whose parent has not reaped it yet still answers signal 0.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

const run = promisify(execFile);

/**
 * True when `pid` is a tunnel process of `stateDir` (its command line has `--state-dir <stateDir>`),
 * so that a pid recycled by an unrelated process is never signalled.
 */
export async function isTunnelProcess(pid: number, stateDir: string): Promise<boolean> {
  if (!isAlive(pid)) return false;
  let args: string[];
  try {
    args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  } catch {
    // No /proc (macOS): ask ps. Arguments are joined with spaces there.
    const out = await run('ps', ['-o', 'command=', '-p', String(pid)]).then((r) => r.stdout, () => '');
    return out.includes(`--state-dir ${resolve(stateDir)}`);
  }
  const at = args.indexOf('--state-dir');
  return at >= 0 && isAbsolute(args[at + 1] ?? '') && resolve(args[at + 1]!) === resolve(stateDir);
}
