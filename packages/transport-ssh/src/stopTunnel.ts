import { TetherError } from '@tether/core';
import { isAlive, isTunnelProcess, readTunnelState, removeFile, tunnelFiles } from './tunnelFiles.js';

/** Options of `stopTunnel`. */
export interface StopTunnelOptions {
  /** The state directory the tunnel was started with. */
  readonly stateDir: string;
  /** Stop the tunnel only if it is this process (it may have been replaced meanwhile). Default: whichever runs. */
  readonly pid?: number;
  /** Wait this long after SIGTERM before SIGKILL. Default 5000 ms. */
  readonly timeoutMs?: number;
}

/**
 * Stops the tunnel of `machine`: SIGTERM to the process its state file names (only if that
 * process really is a tunnel of this state directory, never a recycled pid), SIGKILL after
 * `timeoutMs`, and waits until it is gone. The tunnel removes its own files; what a killed one
 * left (state and token file) is removed here. A leftover socket is replaced by the next tunnel.
 * Resolves with whether a process was stopped, and its pid.
 */
export async function stopTunnel(machine: string, options: StopTunnelOptions): Promise<{ stopped: boolean; pid?: number }> {
  const files = tunnelFiles(options.stateDir, machine);
  const state = await readTunnelState(files);
  if (!state || (options.pid !== undefined && state.pid !== options.pid)) return { stopped: false };
  const { pid } = state;
  let stopped = false;
  if (await isTunnelProcess(pid, options.stateDir)) {
    stopped = true;
    signal(pid, 'SIGTERM');
    if (!(await gone(pid, options.timeoutMs ?? 5_000))) {
      signal(pid, 'SIGKILL');
      if (!(await gone(pid, 2_000))) throw new TetherError('TIMEOUT', `the tunnel of ${machine} (pid ${pid}) did not exit`, { pid });
    }
  }
  if ((await readTunnelState(files))?.pid === pid) {
    await removeFile(files.token);
    await removeFile(files.state);
  }
  return { stopped, pid };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}
