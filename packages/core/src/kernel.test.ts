import { describe, expect, it } from 'vitest';
import { isTetherError } from './errors.js';
import { createKernel } from './kernel.js';
import { definePlugin, PLUGIN_API_VERSION } from './plugin.js';
import { Transport } from './transport.js';
import { VERSION } from './version.js';
import { createChannelPair } from './protocol/memoryChannel.js';
import { serveMachine } from './protocol/rpcServer.js';
import { readFileSync } from 'node:fs';

async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    return isTetherError(error) ? error.code : `not a TetherError: ${String(error)}`;
  }
  return undefined;
}

describe('createKernel', () => {
  it('without a process backend, exec.start fails with BACKEND_UNAVAILABLE and records nothing', async () => {
    const kernel = await createKernel();
    const local = kernel.machine('local');
    expect(await codeOf(local.exec.start({ command: 'true' }))).toBe('BACKEND_UNAVAILABLE');
    expect((await local.exec.list()).items).toEqual([]);
    expect(await codeOf(local.fs.stat('/'))).toBe('BACKEND_UNAVAILABLE');
    expect(await codeOf(local.gpu.probe())).toBe('BACKEND_UNAVAILABLE');
    expect((await local.info()).backends).toEqual({ process: false, filesystem: false, gpu: false });
    await kernel.close();
  });

  it('validates exec.start input at the boundary', async () => {
    const kernel = await createKernel();
    const exec = kernel.machine().exec;
    expect(await codeOf(exec.start({} as never))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(exec.start({ command: 'a', argv: ['b'] }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(exec.start({ argv: ['a\0b'] }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(exec.start({ command: 'x', id: '../etc' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(exec.start({ command: 'x', timeoutMs: -1 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(exec.get('nope'))).toBe('EXEC_NOT_FOUND');
    await kernel.close();
  });

  it('names machines and refuses unknown ones and ones without a transport', async () => {
    const plugin = definePlugin({
      name: 'ws-like',
      apiVersion: PLUGIN_API_VERSION,
      register: (ctx) => ctx.provide(Transport, { useValue: { name: 'ws', connect: () => Promise.reject(new Error('unused')) } }),
    });
    const kernel = await createKernel({
      plugins: [plugin],
      machines: [
        { name: 'gpu1', transport: 'ssh' },
        { name: 'box', transport: 'ws' },
      ],
    });
    expect(kernel.machineNames()).toEqual(['local', 'gpu1', 'box']);
    expect(await codeOf(() => kernel.machine('nowhere'))).toBe('UNKNOWN_MACHINE');
    expect(await codeOf(() => kernel.machine('gpu1'))).toBe('TRANSPORT_UNAVAILABLE');
    await kernel.close();
  });

  it('reaches a configured machine through its transport, and serves the same machine each time', async () => {
    const served = await createKernel();
    const plugin = definePlugin({
      name: 'memory-transport',
      apiVersion: PLUGIN_API_VERSION,
      register: (ctx) =>
        ctx.provide(Transport, {
          useValue: {
            name: 'memory',
            connect: async () => {
              const [client, server] = createChannelPair();
              serveMachine(served.machine('local'), server);
              return client;
            },
          },
        }),
    });
    const kernel = await createKernel({ plugins: [plugin], machines: [{ name: 'twin', transport: 'memory' }] });
    const twin = kernel.machine('twin');
    expect(kernel.machine('twin')).toBe(twin);
    expect(await codeOf(twin.exec.start({ command: 'true' }))).toBe('BACKEND_UNAVAILABLE');
    expect(await codeOf(twin.exec.get('nope'))).toBe('EXEC_NOT_FOUND');
    expect((await twin.info()).name).toBe('local');
    await kernel.close();
    await served.close();
    expect(await codeOf(createKernel({ machines: [{ name: 'local', transport: 'ws' }] }))).toBe('INVALID_ARGUMENT');
  });

  it('reports the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
