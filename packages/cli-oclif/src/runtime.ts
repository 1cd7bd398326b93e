/**
 * Everything heavy the CLI's client side uses — the kernel, the WebSocket client, the config
 * parser, the local daemon's client, the sync engine and its local filesystem — behind one
 * module. Commands import it lazily (a command that does not reach a machine never loads it),
 * and the build bundles it into one file (scripts/bundle.mjs) so a cold start reads one file
 * instead of several hundred. The ssh transport is not in it: it is imported only for ssh machines.
 *
 * The daemon (`daemon serve`) does not use it: it imports the packages directly.
 */
export { RemoteMachine, createKernel, Transport, isTetherError, normalizeSignal, durationMs, syncDirectory } from '@tether/core';
export { LocalFileSystemBackend } from '@tether/plugin-filesystem';
export { connectWs } from '@tether/transport-ws';
export { loadConfig } from './config/configFile.js';
export { WsMachineFields } from './config/wsMachineFields.js';
export { formatIssues } from './config/formatIssues.js';
export { connectLocalDaemon, localDaemonStatus, pidFromFile, isAlive } from './localDaemon.js';
export { resultJson, commandExitCode } from './resultJson.js';
export { importKernelPlugins, pluginEntries, validateWithSchema } from './kernelPlugins.js';
