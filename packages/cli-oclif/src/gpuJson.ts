import type { GpuInfo, GpuProbeResult } from '@tether/core';
import { rfc3339 } from './duration.js';

export function gpuJson(gpu: GpuInfo) {
  return {
    index: gpu.index,
    uuid: gpu.uuid,
    name: gpu.name,
    memory_used_mib: gpu.memoryUsedMiB,
    memory_total_mib: gpu.memoryTotalMiB,
    utilization_gpu: gpu.utilizationPct,
    temperature_c: gpu.temperatureC,
    // A cluster's GPUs (the Slurm plugin's probe) say where they are and whether a job has them.
    ...(gpu.node !== undefined ? { node: gpu.node } : {}),
    ...(gpu.partitions !== undefined ? { partitions: gpu.partitions } : {}),
    ...(gpu.allocated !== undefined ? { allocated: gpu.allocated } : {}),
  };
}

/** `gpu status`: the contract's shape; `reason` says why `available` is false, `warnings` what was skipped. */
export function gpuStatusJson(probe: GpuProbeResult) {
  return {
    available: probe.available,
    ...(probe.reason !== undefined ? { reason: probe.reason } : {}),
    gpus: probe.gpus.map(gpuJson),
    processes: probe.processes.map((p) => ({ pid: p.pid, gpu_uuid: p.gpuUuid, used_memory_mib: p.usedMemoryMiB })),
    probed_at: rfc3339(probe.probedAt),
    ...(probe.warnings && probe.warnings.length > 0 ? { warnings: probe.warnings } : {}),
  };
}
