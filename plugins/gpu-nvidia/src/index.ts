import { GpuProbe, PLUGIN_API_VERSION, definePlugin } from '@tether/core';
import { NvidiaSmiConfig } from './nvidiaSmiConfig.js';
import { NvidiaSmiProbe } from './nvidiaSmiProbe.js';

export { NvidiaSmiConfig, type NvidiaSmiConfigInput } from './nvidiaSmiConfig.js';
export { NvidiaSmiProbe, GPU_QUERY_ARGS, COMPUTE_APPS_QUERY_ARGS, type NvidiaProbeResult } from './nvidiaSmiProbe.js';
export {
  parseGpuCsv,
  parseComputeAppsCsv,
  formatParseIssue,
  GPU_QUERY_FIELDS,
  COMPUTE_APPS_QUERY_FIELDS,
  type ParseIssue,
  type GpuCsvParse,
  type ComputeAppsCsvParse,
} from './parseGpuCsv.js';
export { assessGpus, freeGpus, waitForFreeGpu, type GpuAssessment, type GpuGateInput } from './waitForFreeGpu.js';

/**
 * The NVIDIA GPU probe plugin: provides `GpuProbe` backed by `nvidia-smi`.
 * Config: `NvidiaSmiConfig` (`command`, `timeoutMs`, `cacheMs`, `maxOutputBytes`).
 */
export default definePlugin({
  name: '@tether/plugin-gpu-nvidia',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: NvidiaSmiConfig,
  register(ctx) {
    const probe = new NvidiaSmiProbe(ctx.config);
    ctx.provide(GpuProbe, { useValue: probe });
    ctx.onDispose(() => probe.close());
  },
});
