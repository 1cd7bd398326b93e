import { GpuProbe, PLUGIN_API_VERSION, ProcessBackend, definePlugin } from '@tether/core';
import { SlurmGpuProbe } from './slurmGpus.js';
import { SlurmBackend } from './slurmBackend.js';
import { SlurmConfig } from './slurmConfig.js';

export { SlurmBackend, sbatchFlags } from './slurmBackend.js';
export { SlurmConfig, SlurmJobOptions, RESERVED_SBATCH_FLAGS, type SlurmConfigInput } from './slurmConfig.js';
export { exitOf, parseExitCode, parseSqueue, phaseOf, type JobInfo } from './jobState.js';
export { jobScript, shellQuote } from './jobScript.js';
export { SlurmGpuProbe, gpusOf, parseSinfoGres, SINFO_GPU_ARGS, type SlurmNodeGres } from './slurmGpus.js';

/**
 * The Slurm plugin: a ProcessBackend named `slurm` (config `name`) that runs executions as
 * Slurm batch jobs. Executions choose it with `spec.backend: 'slurm'` (CLI `--backend slurm`),
 * or it is the machine's default when it is the only process backend loaded (or named as the
 * default). With `gpuProbe: true` it also reports the cluster's GPUs (sinfo GRES).
 */
export default definePlugin({
  name: '@tether/plugin-slurm',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: SlurmConfig,
  register(ctx) {
    const backend = new SlurmBackend(ctx.config);
    ctx.provide(ProcessBackend, { useValue: backend });
    // The cluster's GPUs as the machine's (gpu status, gpu wait); registered after the NVIDIA probe, it is the one used.
    if (ctx.config.gpuProbe) ctx.provide(GpuProbe, { useValue: new SlurmGpuProbe(backend.commands) });
  },
});
