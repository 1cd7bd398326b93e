import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKernel, type Kernel, type PluginEntry } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import slurmPlugin, { type SlurmConfigInput } from '../src/index.js';
import { slurmAvailability, type SlurmCluster } from '../src/testing/index.js';

/** Whether a local Slurm can run here; the suites skip with this reason when it cannot. */
export const availability = await slurmAvailability();
export const skipReason = availability.ok ? '' : ` (skipped: ${availability.reason})`;
if (!availability.ok) console.warn(`Slurm tests skipped: ${availability.reason}`);

/** The plugin's config for a test cluster: its slurm.conf, output files in its shared directory, quick polls. */
export function slurmConfig(cluster: SlurmCluster, more: Partial<SlurmConfigInput> = {}): SlurmConfigInput {
  return { slurmConf: cluster.conf, spoolDir: join(cluster.dir, 'shared', 'jobs'), pollMs: 100, tailMs: 50, ...more };
}

/** A kernel whose default backend is the cluster's Slurm, recording into LevelDB in `dir`. */
export async function slurmKernel(
  cluster: SlurmCluster,
  dir: string,
  plugins: PluginEntry[] = [],
  config: Partial<SlurmConfigInput> = {},
): Promise<{ kernel: Kernel; close(): Promise<void> }> {
  const store = await LevelEventStore.open(join(dir, 'events'));
  const kernel = await createKernel({ plugins: [...plugins, { plugin: slurmPlugin, config: slurmConfig(cluster, config) }], store });
  if (kernel.plugins.failed.length > 0) throw kernel.plugins.failed[0]!.error;
  return {
    kernel,
    async close() {
      await kernel.close();
      await store.close();
    },
  };
}

export async function tempDir(prefix = 'tether-slurm-test-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
