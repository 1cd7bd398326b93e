import { describe, expect, it } from 'vitest';
import { declaredKernelPlugins, isDaemonPlugin } from './kernelPlugins.js';

describe('declaredKernelPlugins', () => {
  it('reads package.json "tether.kernelPlugins" of every package, relative modules against their root', () => {
    const declared = declaredKernelPlugins([
      { name: '@tether/cli', root: '/cli', pjson: { tether: { kernelPlugins: [{ module: '@tether/transport-ws', transports: ['ws'] }, '@tether/plugin-process'] } } },
      { name: 'no-tether', root: '/x', pjson: {} },
      { name: 'tether-plugin-docker', root: '/plugins/docker', pjson: { tether: { kernelPlugins: [{ module: './dist/plugin.js', transports: ['docker'] }, { bad: true }] } } },
    ]);
    expect(declared.map((d) => [d.declaredBy, d.specifier, d.transports ?? null])).toEqual([
      ['@tether/cli', '@tether/transport-ws', ['ws']],
      ['@tether/cli', '@tether/plugin-process', null],
      ['tether-plugin-docker', 'file:///plugins/docker/dist/plugin.js', ['docker']],
    ]);
  });

  it('sends backends to the daemon and keeps transports for clients, unless told otherwise', () => {
    expect(isDaemonPlugin({ module: 'a' })).toBe(true);
    expect(isDaemonPlugin({ module: 'a', transports: ['x'] })).toBe(false);
    expect(isDaemonPlugin({ module: 'a', transports: ['x'], daemon: true })).toBe(true);
  });
});
