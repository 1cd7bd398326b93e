// The public API of @tether/plugin-process.
import { PLUGIN_API_VERSION, ProcessBackend, definePlugin } from '@tether/core';
import { ChildProcessBackend } from './childProcessBackend.js';
import { ProcessConfig } from './processConfig.js';

export { ChildProcessBackend } from './childProcessBackend.js';
export { ProcessConfig, type ProcessConfigInput } from './processConfig.js';
export { EXEC_ID_VARIABLE, findSurvivors, signalGroup, signalPids } from './processTree.js';

/** Provides `ProcessBackend`: child processes and PTYs, each leading its own process group. */
export default definePlugin({
  name: '@tether/plugin-process',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: ProcessConfig,
  register(ctx) {
    ctx.provide(ProcessBackend, { useValue: new ChildProcessBackend(ctx.config) });
  },
});
