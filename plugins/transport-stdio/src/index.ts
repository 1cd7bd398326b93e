import { definePlugin, PLUGIN_API_VERSION, Transport } from '@tether/core';
import { StdioTransport } from './stdioTransport.js';

export { StdioTransport } from './stdioTransport.js';
export { machineSchema, type StdioMachineConfig } from './machineSchema.js';

/** Provides the `stdio` transport: a daemon reached through a bridge command's stdin/stdout. */
export default definePlugin({
  name: '@tether/transport-stdio',
  apiVersion: PLUGIN_API_VERSION,
  register(ctx) {
    ctx.provide(Transport, { useValue: new StdioTransport() });
  },
});
