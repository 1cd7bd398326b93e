// The machine contract's cases with every execution a job on a real single-node Slurm (no
// stdin and no terminal: a batch job has neither).
import { describe } from 'vitest';
import { machineContract } from '@tether/core/testing';
import filesystemPlugin from '@tether/plugin-filesystem';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import { startSlurmCluster } from '../src/testing/index.js';
import { availability, skipReason, slurmKernel, tempDir } from './support.js';

describe.skipIf(!availability.ok)(`slurm backend${skipReason}`, () => {
  const cleanups: Array<() => Promise<void>> = [];
  machineContract(
    'LocalMachine whose default backend is Slurm',
    async ({ workDir }) => {
      const cluster = await startSlurmCluster();
      const state = await tempDir();
      const { kernel, close } = await slurmKernel(cluster, state.dir, [
        { plugin: filesystemPlugin, config: { roots: [workDir] } },
        { plugin: gpuPlugin, config: { command: 'tether-no-nvidia-smi' } },
      ]);
      return {
        machine: kernel.machine('local'),
        async close() {
          await close();
          await cluster.stop();
          await state.remove();
          for (const cleanup of cleanups) await cleanup();
        },
      };
    },
    async () => {
      const work = await tempDir('tether-slurm-work-');
      cleanups.push(work.remove);
      return work.dir;
    },
    { unsupported: ['stdin', 'tty'] },
  );
});
