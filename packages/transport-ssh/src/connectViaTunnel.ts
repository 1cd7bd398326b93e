import { spawn } from 'node:child_process';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, TetherError, isTetherError, type Channel, type MachineConfig } from '@tether/core';
import { connectWs, readToken, type KeepaliveOptions } from '@tether/transport-ws';
import { machineSchema } from './machineSchema.js';
import { stopTunnel } from './stopTunnel.js';
import { isAlive, readTunnelState, tunnelConfigHash, tunnelFiles, type TunnelFiles, type TunnelSshOptions, type TunnelState } from './tunnelFiles.js';

/** The built tunnel entry point, `dist/tunnelMain.js`. */
// Resolved through the package's exports rather than relative to this file, so it is right
// when this module is bundled into another package's output too.
export const TUNNEL_MAIN = fileURLToPath(import.meta.resolve('@tether/transport-ssh/tunnelMain'));

/** What one `connectViaTunnel` call did, as `verbose` prints it (`{"tunnel": …}`). */
export interface TunnelTelemetry {
  readonly machine: string;
  /** False when this call started the tunnel that served it. */
  readonly reused: boolean;
  /** The tunnel process. */
  readonly pid: number;
  /** The whole call, in ms (spawning included). */
  readonly connect_ms: number;
  /** Time spent starting the tunnel and waiting until it was ready, when this call started one. */
  readonly spawn_ms?: number;
}

/** Options of `connectViaTunnel`. */
export interface ConnectViaTunnelOptions {
  /** The user's state directory; tunnels live in `<stateDir>/tunnels/`. */
  readonly stateDir: string;
  /** Start a tunnel when none serves the machine. Default true; false fails with `CONNECTION_LOST` (`reason: 'no-tunnel'`). */
  readonly spawnIfMissing?: boolean;
  /** How the tunnel opens its SSH connection (part of the config hash). Default: OpenSSH's files. */
  readonly ssh?: TunnelSshOptions;
  /** For a tunnel this call starts: exit after this long without connections. Default 10 minutes. */
  readonly idleTimeoutMs?: number;
  /** Give up on a starting tunnel after this long (`TIMEOUT`). Default 30 000 ms. */
  readonly startTimeoutMs?: number;
  /** The program that runs the tunnel; `--state-dir …` and the other flags are appended. Default `node dist/tunnelMain.js`. */
  readonly command?: readonly [string, ...string[]];
  /** Write one JSON line `{"tunnel":{…}}` (see `TunnelTelemetry`) on stderr. Default false. */
  readonly verbose?: boolean;
  /** Called with the same telemetry. */
  readonly onTelemetry?: (telemetry: TunnelTelemetry) => void;
  /** Give up on the WebSocket upgrade through the tunnel after this long. Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** WebSocket keepalive. Default `connectWs`'s. */
  readonly keepalive?: KeepaliveOptions;
  /** Largest message accepted from the daemon. Default 256 MiB. */
  readonly maxPayloadBytes?: number;
  readonly signal?: AbortSignal;
}

const POLL_MS = 10;

/**
 * Connects to the daemon of an `ssh` machine through its persistent local tunnel, starting the
 * tunnel (detached, `tunnelMain.js`, output to `<stateDir>/tunnels/<machine>.log`) when none
 * serves the machine. The tunnel is found through its state file: it is used when its process
 * is alive, its config hash matches this config and a WebSocket handshake through it succeeds;
 * else it is stopped and replaced. Concurrent callers end up sharing one tunnel (its socket is
 * its lock). The returned `Channel` is the daemon's authenticated WebSocket, carried over the
 * tunnel's SSH connection.
 *
 * Fails as `SshTransport.connect` does (the tunnel's own start error is passed on: `UNAUTHORIZED`,
 * `CONNECTION_LOST` with `reason` `daemon-not-running`, `no-token`, `bridge-failed`…),
 * `TIMEOUT` when a tunnel does not become ready within `startTimeoutMs`.
 *
 * ```ts
 * const channel = await connectViaTunnel({ name: 'gpu1', transport: 'ssh', ssh: 'gpu1' }, { stateDir });
 * const gpu1 = new RemoteMachine({ name: 'gpu1', connect: () => Promise.resolve(channel) });
 * ```
 */
export async function connectViaTunnel(machine: MachineConfig, options: ConnectViaTunnelOptions): Promise<Channel> {
  const t0 = performance.now();
  const parsed = machineSchema.safeParse(machine);
  if (!parsed.success || typeof machine?.name !== 'string' || machine.name.length === 0) {
    const where = parsed.success ? 'name: required' : parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new TetherError('INVALID_ARGUMENT', `machine ${String(machine?.name)} has an invalid ssh config: ${where}`, { machine: machine?.name });
  }
  const files = tunnelFiles(options.stateDir, machine.name);
  const hash = tunnelConfigHash(machine, options.ssh);
  let spawnMs = 0;
  let spawned = false;
  for (let attempt = 0; ; attempt++) {
    const found = await findOrStartTunnel(machine, files, hash, options);
    spawnMs += found.spawnMs;
    spawned ||= found.spawned;
    const { state } = found;
    try {
      const token = parsed.data.token ?? (await readToken(state.tokenFile ?? files.token));
      const channel = await connectWs(`unix:${state.socket}`, {
        token,
        signal: options.signal,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
        keepalive: options.keepalive,
        maxPayloadBytes: options.maxPayloadBytes,
      });
      const telemetry: TunnelTelemetry = {
        machine: machine.name,
        reused: !spawned,
        pid: state.pid,
        connect_ms: round(performance.now() - t0),
        ...(spawned ? { spawn_ms: round(spawnMs) } : {}),
      };
      options.onTelemetry?.(telemetry);
      if (options.verbose) process.stderr.write(`${JSON.stringify({ tunnel: telemetry })}\n`);
      return channel;
    } catch (error) {
      // A tunnel that cannot carry a handshake (its SSH connection is dead, the daemon went away,
      // the daemon's token changed) is replaced once; the new tunnel's start says what is wrong.
      const replaceable = isTetherError(error, 'CONNECTION_LOST') || isTetherError(error, 'UNAUTHORIZED') || isTetherError(error, 'PATH_NOT_FOUND');
      if (attempt > 0 || !replaceable || options.signal?.aborted || options.spawnIfMissing === false) throw error;
      await stopTunnel(machine.name, { stateDir: options.stateDir, pid: state.pid });
    }
  }
}

async function findOrStartTunnel(
  machine: MachineConfig,
  files: TunnelFiles,
  hash: string,
  options: ConnectViaTunnelOptions,
): Promise<{ state: TunnelState; spawned: boolean; spawnMs: number }> {
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  let spawnMs = 0;
  for (let round = 0; ; round++) {
    throwIfAborted(options.signal);
    const state = await readTunnelState(files);
    if (state && isAlive(state.pid)) {
      if (state.configHash !== hash) {
        await stopTunnel(machine.name, { stateDir: options.stateDir, pid: state.pid });
        continue;
      }
      if (state.status === 'ready') return { state, spawned: false, spawnMs };
      // Another call started it: wait for it.
      const ready = await waitUntilReady(files, state.pid, deadline, options.signal);
      if (ready) return { state: ready, spawned: false, spawnMs };
      continue;
    }
    if (options.spawnIfMissing === false) {
      throw new TetherError('CONNECTION_LOST', `connection refused: no tunnel serves machine ${machine.name} (in ${files.dir})`, { machine: machine.name, reason: 'no-tunnel' });
    }
    if (round >= 5 || Date.now() > deadline) {
      throw new TetherError('TIMEOUT', `the tunnel to ${machine.name} did not become ready (see ${files.log})`, { machine: machine.name, log: files.log });
    }
    const t0 = performance.now();
    const started = await spawnTunnel(machine, files, deadline, options);
    spawnMs += performance.now() - t0;
    // Busy: a tunnel started by a racing call holds the socket; the next round waits for it.
    if (started) return { state: started, spawned: true, spawnMs };
  }
}

/** Polls the state file until `pid` says it is ready (its state), or `pid` is gone (undefined). */
async function waitUntilReady(files: TunnelFiles, pid: number, deadline: number, signal?: AbortSignal): Promise<TunnelState | undefined> {
  for (;;) {
    throwIfAborted(signal);
    const state = await readTunnelState(files);
    if (state?.pid === pid && state.status === 'ready') return state;
    if (state?.pid !== pid || !isAlive(pid)) return undefined;
    if (Date.now() > deadline) {
      throw new TetherError('TIMEOUT', `the tunnel to ${state.machine} (pid ${pid}) did not become ready (see ${files.log})`, { pid, log: files.log });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Starts `tunnelMain` detached and reads its one stdout line: its state once it is ready, or
 * undefined when another tunnel already holds the socket. Its start error is rethrown.
 */
async function spawnTunnel(machine: MachineConfig, files: TunnelFiles, deadline: number, options: ConnectViaTunnelOptions): Promise<TunnelState | undefined> {
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  // The log keeps a few lines per tunnel run; start it over once it has grown large.
  const large = ((await stat(files.log).catch(() => undefined))?.size ?? 0) > 1024 * 1024;
  const log = await open(files.log, large ? 'w' : 'a', 0o600);
  const [program, ...args] = options.command ?? [process.execPath, TUNNEL_MAIN];
  const flags = ['--state-dir', resolvePath(options.stateDir), '--ssh-options', JSON.stringify(options.ssh ?? {})];
  if (options.idleTimeoutMs !== undefined) flags.push('--idle-timeout-ms', String(options.idleTimeoutMs));
  let child;
  try {
    child = spawn(program, [...args, ...flags], { detached: true, stdio: ['pipe', 'pipe', log.fd], cwd: '/', env: process.env });
  } finally {
    await log.close();
  }
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(JSON.stringify(machine));

  let line: string;
  try {
    line = await firstLine(child, deadline, options.signal);
  } catch (error) {
    child.kill('SIGTERM');
    throw error;
  } finally {
    child.stdin!.destroy();
    child.stdout!.destroy();
    child.unref();
  }
  let said: { ready?: TunnelState; busy?: boolean; error?: { code: string; message: string; details?: Record<string, unknown> } };
  try {
    said = JSON.parse(line);
  } catch {
    said = {};
  }
  if (said.ready) return said.ready;
  if (said.busy) return undefined;
  if (said.error) {
    const { code, message, details } = said.error;
    throw new TetherError(code in ErrorCodes ? (code as never) : 'INTERNAL', message, { ...details, log: files.log });
  }
  const tail = (await readFile(files.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
  throw new TetherError('INTERNAL', `the tunnel process for ${machine.name} exited without saying why${tail ? `: ${tail}` : ''}`, { log: files.log });
}

function firstLine(child: ReturnType<typeof spawn>, deadline: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => done(new TetherError('TIMEOUT', `the tunnel process (pid ${child.pid}) did not become ready in time`)), Math.max(0, deadline - Date.now()));
    const onAbort = () => done(new TetherError('ABORTED', 'connecting was aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (error: Error | undefined, line?: string) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      child.stdout!.removeAllListeners('data');
      child.removeListener('error', onError);
      child.removeListener('close', onClose);
      if (error) reject(error);
      else resolve(line ?? '');
    };
    const onError = (error: Error) => done(new TetherError('INTERNAL', `cannot start the tunnel process: ${error.message}`, {}, { cause: error }));
    const onClose = () => done(undefined, out.split('\n')[0]);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const newline = out.indexOf('\n');
      if (newline >= 0) done(undefined, out.slice(0, newline));
    });
    child.once('error', onError);
    child.once('close', onClose);
  });
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new TetherError('ABORTED', 'connecting was aborted');
}

const round = (ms: number) => Math.round(ms * 10) / 10;
