// The public API of @tether/transport-ssh.
import { definePlugin, PLUGIN_API_VERSION, Transport } from '@tether/core';
import { pluginConfig } from './pluginConfig.js';
import { SshTransport } from './sshTransport.js';
import { TunnelTransport } from './tunnelTransport.js';

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
export { pluginConfig, sshOptionsSchema } from './pluginConfig.js';
export { TunnelTransport, type TunnelTransportOptions } from './tunnelTransport.js';
export { connectViaTunnel, TUNNEL_MAIN, type ConnectViaTunnelOptions, type TunnelTelemetry } from './connectViaTunnel.js';
export { startTunnel, DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, type StartTunnelOptions, type Tunnel, type TunnelExitReason } from './startTunnel.js';
export { stopTunnel, type StopTunnelOptions } from './stopTunnel.js';
export { tunnelFiles, tunnelConfigHash, readTunnelState, type TunnelFiles, type TunnelState, type TunnelSshOptions } from './tunnelFiles.js';

/**
 * Provides the `ssh` transport: machines with `transport: ssh` and an `ssh` target. The plugin
 * config is optional (see `pluginConfig`); the transport's SSH connections close with the kernel.
 * With `tunnelStateDir` in the config, the transport is a `TunnelTransport` (persistent tunnel
 * processes, for the CLI); without it, an `SshTransport` (connections in this process).
 */
export default definePlugin({
  name: '@tether/transport-ssh',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: pluginConfig,
  register(ctx) {
    const { tunnelStateDir, tunnelIdleTimeoutMs, tunnelVerbose, ...options } = ctx.config;
    const transport =
      tunnelStateDir === undefined
        ? new SshTransport(options)
        : new TunnelTransport({ ...options, stateDir: tunnelStateDir, tunnelIdleTimeoutMs, verbose: tunnelVerbose });
    ctx.provide(Transport, { useValue: transport });
    ctx.onDispose(() => transport.close());
  },
});
