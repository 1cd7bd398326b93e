// The public API of @tether/plugin-process.
import { PLUGIN_API_VERSION, ProcessBackend, definePlugin } from '@tether/core';
import { ChildProcessBackend } from './childProcessBackend.js';
import { ProcessConfig } from './processConfig.js';
import { SupervisedProcessBackend } from './supervisor/supervisedBackend.js';

export { ChildProcessBackend } from './childProcessBackend.js';
export { ProcessConfig, type ProcessConfigInput } from './processConfig.js';
export { SupervisedProcessBackend, SUPERVISOR_MAIN, type SupervisorOptions } from './supervisor/supervisedBackend.js';
export { EXEC_ID_VARIABLE, findSurvivors, signalGroup, signalPids } from './processTree.js';

/**
 * Provides `ProcessBackend`: child processes and PTYs, each leading its own process group; with
 * `supervisorDir`, each under a supervisor of its own that outlives the daemon.
 */
export default definePlugin({
  name: '@tether/plugin-process',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: ProcessConfig,
  register(ctx) {
    const direct = new ChildProcessBackend(ctx.config);
    const config = direct.config;
    const backend = config.supervisorDir
      ? new SupervisedProcessBackend(direct, {
          dir: config.supervisorDir,
          spoolLimitBytes: config.spoolLimitBytes,
          warm: config.warmSupervisors,
          drainTimeoutMs: config.drainTimeoutMs,
        })
      : direct;
    ctx.provide(ProcessBackend, { useValue: backend });
  },
});
