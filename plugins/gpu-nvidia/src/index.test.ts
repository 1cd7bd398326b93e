import { GpuProbe, PLUGIN_API_VERSION, loadPlugins } from '@tether/core';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeNvidiaSmi, fixture } from '../test/fakeNvidiaSmi.js';
import plugin, { NvidiaSmiProbe } from './index.js';

type Container = Parameters<typeof loadPlugins>[1];

/** The smallest container the plugin host needs: register and resolve by token. */
function tinyContainer() {
  const values = new Map<unknown, unknown>();
  const container = {
    register(token: unknown, provider: { useValue: unknown }) {
      values.set(token, provider.useValue);
      return container;
    },
    resolve(token: unknown) {
      if (!values.has(token)) throw new Error('not registered');
      return values.get(token);
    },
  };
  return { container: container as unknown as Container, values };
}

let fake: FakeNvidiaSmi | undefined;
afterEach(() => fake?.cleanup());

describe('@tether/plugin-gpu-nvidia', () => {
  it('is a plugin for this kernel', () => {
    expect(plugin).toMatchObject({ name: '@tether/plugin-gpu-nvidia', apiVersion: PLUGIN_API_VERSION, __tetherPlugin: true });
  });

  it('provides GpuProbe with its config, and closes it on dispose', async () => {
    fake = new FakeNvidiaSmi(fixture('a100-single.gpu.csv'), '');
    const { container, values } = tinyContainer();
    const disposers: Array<() => void | Promise<void>> = [];
    const report = await loadPlugins([{ plugin, config: { command: fake.command, cacheMs: 0 } }], container, disposers);
    expect(report).toEqual({ loaded: ['@tether/plugin-gpu-nvidia'], failed: [] });
    const probe = values.get(GpuProbe) as GpuProbe;
    expect(probe).toBeInstanceOf(NvidiaSmiProbe);
    expect((probe as NvidiaSmiProbe).config).toEqual({ command: fake.command, cacheMs: 0, timeoutMs: 5000, maxOutputBytes: 1048576 });
    expect((await probe.probe()).gpus.map((g) => g.name)).toEqual(['NVIDIA A100-SXM4-80GB']);
    for (const dispose of disposers) await dispose();
    expect(await probe.probe()).toMatchObject({ available: false, reason: 'the GPU probe is closed' });
  });

  it('applies defaults to an empty config', async () => {
    const { container, values } = tinyContainer();
    await loadPlugins([plugin], container, []);
    expect((values.get(GpuProbe) as NvidiaSmiProbe).config).toEqual({
      command: 'nvidia-smi',
      timeoutMs: 5000,
      cacheMs: 2000,
      maxOutputBytes: 1048576,
    });
  });

  it('is reported and skipped with an invalid config', async () => {
    const { container, values } = tinyContainer();
    const report = await loadPlugins([{ plugin, config: { timeoutMs: -1, comand: 'typo' } }], container, []);
    expect(report.loaded).toEqual([]);
    expect(report.failed[0]?.error.code).toBe('PLUGIN_LOAD_FAILED');
    expect(report.failed[0]?.error.message).toMatch(/timeoutMs/);
    expect(values.size).toBe(0);
  });
});
