// The public API of @tether/transport-ssh.
import { definePlugin, PLUGIN_API_VERSION, Transport } from '@tether/core';
import { pluginConfig } from './pluginConfig.js';
import { SshTransport } from './sshTransport.js';

export { SshTransport, type SshTransportOptions } from './sshTransport.js';
export { sshConnect, DEFAULT_KEEPALIVE_INTERVAL_MS, DEFAULT_KEEPALIVE_COUNT_MAX, type SshConnectOptions } from './sshConnect.js';
export { SshConnection, type SshCommandResult, type SshRunOptions } from './sshConnection.js';
export { runSshCommand, type RunSshCommandOptions, type RunSshCommandResult } from './runSshCommand.js';
export { bridgeStdio, type BridgeTarget, type BridgeStreams } from './bridgeStdio.js';
export { wsOverStream, type WsOverStreamOptions } from './wsOverStream.js';
export { resolveSshHost, describeHost, type ResolvedSshHost, type SshConfigOptions } from './resolveSshHost.js';
export { parseSshTarget, formatSshTarget, type SshTarget } from './sshTarget.js';
export { KnownHosts, hostKeyName, hostKeyFingerprint, type HostKeyVerdict, type KnownHostsLocation } from './knownHosts.js';
export {
  machineSchema,
  DEFAULT_DAEMON_PORT,
  DEFAULT_TOKEN_FILE,
  DEFAULT_BRIDGE_CMD,
  DEFAULT_DAEMON_CMD,
  type SshMachineConfig,
} from './machineSchema.js';
export { shellQuote } from './shellQuote.js';
export { pluginConfig } from './pluginConfig.js';

/**
 * Provides the `ssh` transport: machines with `transport: ssh` and an `ssh` target. The plugin
 * config is optional (see `pluginConfig`); the transport's SSH connections close with the kernel.
 */
export default definePlugin({
  name: '@tether/transport-ssh',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: pluginConfig,
  register(ctx) {
    const transport = new SshTransport(ctx.config);
    ctx.provide(Transport, { useValue: transport });
    ctx.onDispose(() => transport.close());
  },
});
