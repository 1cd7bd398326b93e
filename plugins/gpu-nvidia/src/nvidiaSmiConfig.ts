import { MAX_TIMER_MS } from '@tether/core';
import { z } from 'zod';

/**
 * Config of `@tether/plugin-gpu-nvidia` (and of `new NvidiaSmiProbe(config)`).
 *
 * @example { command: '/usr/bin/nvidia-smi', timeoutMs: 3000, cacheMs: 1000 }
 */
export const NvidiaSmiConfig = z.strictObject({
  /** The nvidia-smi program: a name looked up on PATH, or a path. Default `nvidia-smi`. */
  command: z
    .string()
    .min(1)
    .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
    .default('nvidia-smi'),
  /**
   * How long one nvidia-smi run may take before it (and its process group) is killed with
   * SIGKILL and the probe answers `available: false`. Default 5000 ms.
   */
  timeoutMs: z.number().int().positive().max(MAX_TIMER_MS, `at most ${MAX_TIMER_MS} ms (about 24.8 days)`).default(5000),
  /** How long a good answer is reused before nvidia-smi is run again; 0 disables. Default 2000 ms. */
  cacheMs: z.number().int().min(0).default(2000),
  /** Most stdout bytes read from one run; more and the run is killed and reported. Default 1 MiB. */
  maxOutputBytes: z.number().int().positive().default(1024 * 1024),
});
export type NvidiaSmiConfig = z.output<typeof NvidiaSmiConfig>;
/** What a caller may pass: every field optional. */
export type NvidiaSmiConfigInput = z.input<typeof NvidiaSmiConfig>;
