/**
 * Everything heavy the CLI's client side uses — the kernel, the WebSocket client, the config
 * parser, the local daemon's client, the sync engine and its local filesystem — behind one
 * module. Commands import it lazily (a command that does not reach a machine never loads it),
 * and the build bundles it into one file (scripts/bundle.mjs) so a cold start reads one file
 * instead of several hundred. The ssh transport is imported only for ssh machines (`loadSsh`).
 *
 * What only some commands need (the YAML config parser, the local filesystem backend of `sync`)
 * is imported on first use, so `tether exec result --machine local` neither loads nor
 * evaluates it (the bundle puts it in a chunk of its own).
 *
 * The daemon (`daemon serve`) does not use it: it imports the packages directly.
 */
import type { TetherConfig } from './config/configFile.js';

export { RemoteMachine, createKernel, Transport, isTetherError, normalizeSignal, durationMs, syncDirectory, setLongTimeout } from '@tether/core';
export { connectWs } from '@tether/transport-ws';
export { WsMachineFields } from './config/wsMachineFields.js';
export { formatIssues } from './config/formatIssues.js';
export { checkMachineFields, suggestion } from './config/unknownFields.js';
export { connectLocalDaemon, localDaemonStatus, pidFromFile, isAlive } from './localDaemon.js';
export { resultJson, commandExitCode, finishedError } from './resultJson.js';
export { monitor, activeExecutions } from './monitor.js';
export { importKernelPlugins, pluginEntries, beforeImportingPlugins } from './kernelPlugins.js';

/** Reads and validates the config file (see config/configFile.ts). */
export async function loadConfig(path: string, explicit: boolean, fallback?: string): Promise<TetherConfig> {
  const config = await import('./config/configFile.js');
  return config.loadConfig(path, explicit, fallback);
}

/** The fields every machine may have, whatever its transport (from the config module, loaded on first use). */
export async function commonMachineFields(): Promise<readonly string[]> {
  return (await import('./config/configFile.js')).COMMON_MACHINE_FIELDS;
}

/**
 * The ssh transport package, from the same runtime as the kernel (in the bundle: a chunk of its
 * own sharing the bundled core, instead of a second, unbundled copy of core).
 */
export function loadSsh(): Promise<typeof import('@tether/transport-ssh')> {
  return import('@tether/transport-ssh');
}

/** The local filesystem backend (`sync`'s local side). */
export async function loadLocalFileSystem(): Promise<typeof import('@tether/plugin-filesystem').LocalFileSystemBackend> {
  return (await import('@tether/plugin-filesystem')).LocalFileSystemBackend;
}
