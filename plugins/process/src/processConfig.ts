import { z } from 'zod';

/**
 * Configuration of `@tether/plugin-process` (every field optional).
 *
 * ```yaml
 * plugins:
 *   - name: '@tether/plugin-process'
 *     config: { drainTimeoutMs: 500, env: { PYTHONUNBUFFERED: '1' } }
 * ```
 */
export const ProcessConfig = z.strictObject({
  /**
   * How long (ms) output may keep being read after the process exited, for pipes that a
   * descendant still holds open (`sleep 100 &`). Only time during which output is actually being
   * read counts, so a consumer that paused the output never loses what the process wrote before
   * exiting. Default 1000.
   */
  drainTimeoutMs: z.number().int().min(0).max(60_000).default(1000),
  /** Variables set for every execution in `merge` mode, on top of the daemon's environment. Default none. */
  env: z.record(z.string().min(1), z.string()).default({}),
  /** `TERM` for a PTY whose environment has none. Default `xterm-256color`. */
  term: z.string().min(1).default('xterm-256color'),
  /**
   * Run each execution under a supervisor of its own that outlives the daemon (see the README),
   * keeping its sockets, records and spools in this directory. The daemon sets it to
   * `<data dir>/supervisors`; without it processes are the daemon's own children.
   */
  supervisorDir: z.string().min(1).optional(),
  /** Most output a supervisor spools while no daemon is attached; beyond, it is dropped and recorded as OutputTruncated. Default 256 MiB. */
  spoolLimitBytes: z.number().int().min(1).default(256 * 1024 * 1024),
  /** Supervisors kept started and idle so that a spawn need not wait for one. Default 1. */
  warmSupervisors: z.number().int().min(0).max(16).default(1),
});
export type ProcessConfig = z.output<typeof ProcessConfig>;
export type ProcessConfigInput = z.input<typeof ProcessConfig>;
