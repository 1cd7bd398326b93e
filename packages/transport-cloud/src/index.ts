// The public API of @tether/transport-cloud.
import { definePlugin, PLUGIN_API_VERSION, Transport } from '@tether/core';
import { CloudTransport } from './cloudTransport.js';
import { machineSchema } from './machineSchema.js';

export { RelayServer, type RelayServerOptions, type EnvironmentStatus, type RelayTap, type TappedMessage } from './relayServer.js';
export { RelayRegistry, type RegistryEntry, type CredentialVerdict } from './relayRegistry.js';
export { RelayAgent, type RelayAgentOptions, type RelayAgentState } from './relayAgent.js';
export { connectCloud, type ConnectCloudOptions } from './connectCloud.js';
export { CloudTransport, cloudMachine, cloudOptions, type CloudMachineOptions } from './cloudTransport.js';
export { RelayAdmin, type RelayAdminOptions } from './relayAdmin.js';
export {
  loadOrCreateIdentity,
  loadIdentity,
  identityFiles,
  certificateFingerprint,
  normalizeFingerprint,
  type DaemonIdentity,
} from './daemonIdentity.js';
export { newCredential, credentialHash, checkName, NAME_PATTERN, type CredentialKind } from './credentials.js';
export { CONTROL_CLOSE, relayBase, relayEndpoint } from './relayProtocol.js';
export type { LogEntry } from '@tether/transport-ws';
export { machineSchema, type CloudMachineConfig } from './machineSchema.js';

/** The `cloud` transport's machine fields, for the CLI's config validation. */
export const machineSchemas = { cloud: machineSchema };

/** Provides the `cloud` transport: machines with `transport: cloud`, reached through a relay. */
export default definePlugin({
  name: '@tether/transport-cloud',
  apiVersion: PLUGIN_API_VERSION,
  register(ctx) {
    ctx.provide(Transport, { useValue: new CloudTransport() });
  },
});
