import 'reflect-metadata';
import { container as root } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Transport } from './transport.js';
import { PLUGIN_API_VERSION, definePlugin, loadPlugins } from './plugin.js';
import { createKernel } from './kernel.js';

const transport = (name: string): Transport => ({ name, connect: async () => Promise.reject(new Error('not used')) });
const transportPlugin = (pluginName: string, transportName = pluginName) =>
  definePlugin({
    name: pluginName,
    apiVersion: PLUGIN_API_VERSION,
    register: (ctx) => ctx.provide(Transport, { useValue: transport(transportName) }),
  });

describe('plugin host', () => {
  it('loads plugins and multi-registers their contributions', async () => {
    const container = root.createChildContainer();
    const report = await loadPlugins([transportPlugin('a'), transportPlugin('b')], container, []);
    expect(report).toEqual({ loaded: ['a', 'b'], failed: [] });
    expect(container.resolveAll(Transport).map((t) => t.name)).toEqual(['a', 'b']);
  });

  it('refuses a duplicate name and keeps the first', async () => {
    const container = root.createChildContainer();
    const report = await loadPlugins([transportPlugin('x', 'first'), transportPlugin('x', 'second')], container, []);
    expect(report.loaded).toEqual(['x']);
    expect(report.failed.map((f) => [f.name, f.error.code])).toEqual([['x', 'PLUGIN_DUPLICATE']]);
    expect(container.resolveAll(Transport).map((t) => t.name)).toEqual(['first']);
  });

  it('reports a plugin that throws, applies none of its contributions, and loads the others', async () => {
    const container = root.createChildContainer();
    const disposed: string[] = [];
    const broken = definePlugin({
      name: 'broken',
      apiVersion: PLUGIN_API_VERSION,
      register(ctx) {
        ctx.provide(Transport, { useValue: transport('half-made') });
        ctx.onDispose(() => void disposed.push('broken'));
        throw new Error('boom at load');
      },
    });
    const report = await loadPlugins([transportPlugin('before'), broken, transportPlugin('after')], container, []);
    expect(report.loaded).toEqual(['before', 'after']);
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]!.error.code).toBe('PLUGIN_LOAD_FAILED');
    expect(report.failed[0]!.error.message).toContain('boom at load');
    expect(container.resolveAll(Transport).map((t) => t.name)).toEqual(['before', 'after']);
    expect(disposed).toEqual(['broken']);
  });

  it('refuses another API version, an invalid config, and something that is not a plugin', async () => {
    const container = root.createChildContainer();
    const future = definePlugin({ name: 'future', apiVersion: PLUGIN_API_VERSION + 1, register: () => undefined });
    const configured = definePlugin({
      name: 'configured',
      apiVersion: PLUGIN_API_VERSION,
      configSchema: z.object({ port: z.number().int() }),
      register: () => undefined,
    });
    const report = await loadPlugins(
      [future, { plugin: configured, config: { port: 'eighty' } }, { name: 'fake' } as never],
      container,
      [],
    );
    expect(report.loaded).toEqual([]);
    expect(report.failed.map((f) => f.error.code)).toEqual(['PLUGIN_API_MISMATCH', 'PLUGIN_LOAD_FAILED', 'PLUGIN_LOAD_FAILED']);
    expect(report.failed[1]!.error.message).toMatch(/port/);
  });

  it('gives a plugin its validated config with defaults, and runs its disposers when the kernel closes', async () => {
    const seen: unknown[] = [];
    const events: string[] = [];
    const plugin = definePlugin({
      name: 'cfg',
      apiVersion: PLUGIN_API_VERSION,
      configSchema: z.object({ depth: z.number().default(3) }),
      register(ctx) {
        seen.push(ctx.config);
        ctx.onDispose(() => void events.push('disposed'));
      },
    });
    const kernel = await createKernel({ plugins: [{ plugin, config: {} }] });
    expect(seen).toEqual([{ depth: 3 }]);
    await kernel.close();
    await kernel.close();
    expect(events).toEqual(['disposed']);
  });
});
