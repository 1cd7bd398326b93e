import { describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { isAlive, tunnelConfigHash, tunnelFiles } from './tunnelFiles.js';

describe('tunnelFiles', () => {
  it('puts every file of a machine in <stateDir>/tunnels, named after the machine', () => {
    expect(tunnelFiles('/state', 'gpu1')).toEqual({
      dir: '/state/tunnels',
      socket: '/state/tunnels/gpu1.sock',
      state: '/state/tunnels/gpu1.json',
      token: '/state/tunnels/gpu1.token',
      log: '/state/tunnels/gpu1.log',
      lock: '/state/tunnels/gpu1.lock',
    });
  });

  it('hashes a machine name that is not a plain file name, so it cannot escape the directory', () => {
    const { socket } = tunnelFiles('/state', '../../etc/x');
    expect(socket).toMatch(/^\/state\/tunnels\/m-[0-9a-f]{16}\.sock$/);
    expect(tunnelFiles('/state', '../../etc/x').socket).toBe(socket);
    expect(tunnelFiles('/state', '../../etc/y').socket).not.toBe(socket);
  });

  it('refuses a socket path longer than Unix sockets allow', () => {
    let error: unknown;
    try {
      tunnelFiles(`/${'d'.repeat(120)}`, 'gpu1');
    } catch (e) {
      error = e;
    }
    expect(isTetherError(error, 'INVALID_ARGUMENT')).toBe(true);
  });
});

describe('tunnelConfigHash', () => {
  const machine = { name: 'gpu1', transport: 'ssh', ssh: 'gpu1', daemon_port: 7337 };

  it('ignores key order and undefined fields, and changes with any value', () => {
    const same = { daemon_port: 7337, ssh: 'gpu1', transport: 'ssh', name: 'gpu1', token_file: undefined };
    expect(tunnelConfigHash(same, { agent: null })).toBe(tunnelConfigHash(machine, { agent: null }));
    expect(tunnelConfigHash({ ...machine, daemon_port: 7338 })).not.toBe(tunnelConfigHash(machine));
    expect(tunnelConfigHash(machine, { home: '/other' })).not.toBe(tunnelConfigHash(machine));
  });
});

describe('isAlive', () => {
  it('is true for this process and false for a pid that does not exist', () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(2 ** 22 + 12345)).toBe(false);
  });
});
