// The machine contract against every way of reaching a machine: the same suite, local and remote.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createChannelPair, createKernel, RemoteMachine, serveMachine, type Kernel } from '@tether/core';
import { machineContract } from '@tether/core/testing';
import { LevelEventStore } from '@tether/store-level';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import gpuPlugin from '@tether/plugin-gpu-nvidia';

const dirs: string[] = [];
const tempDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tether-machine-'));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A kernel with every first-party backend, recording into LevelDB, files confined to workDir. */
async function localKernel(workDir: string): Promise<{ kernel: Kernel; close(): Promise<void> }> {
  const store = await LevelEventStore.open(join(await tempDir(), 'events'));
  const kernel = await createKernel({
    plugins: [processPlugin, { plugin: filesystemPlugin, config: { roots: [workDir] } }, { plugin: gpuPlugin, config: { command: 'tether-no-nvidia-smi' } }],
    store,
  });
  if (kernel.plugins.failed.length > 0) throw kernel.plugins.failed[0]!.error;
  return {
    kernel,
    async close() {
      await kernel.close();
      await store.close();
    },
  };
}

machineContract(
  'LocalMachine',
  async ({ workDir }) => {
    const { kernel, close } = await localKernel(workDir);
    return { machine: kernel.machine('local'), close };
  },
  tempDir,
);

machineContract(
  'RemoteMachine over an in-memory channel',
  async ({ workDir }) => {
    const { kernel, close } = await localKernel(workDir);
    const local = kernel.machine('local');
    const remote = new RemoteMachine({
      name: 'memory',
      connect: async () => {
        const [client, server] = createChannelPair();
        serveMachine(local, server);
        return client;
      },
    });
    return {
      machine: remote,
      async close() {
        await remote.close();
        await close();
      },
    };
  },
  tempDir,
);
