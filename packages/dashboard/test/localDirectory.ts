// A MachineDirectory over machines in this process (a kernel's LocalMachine), for tests that
// need no daemon: the security checks and the scale test.
import { TetherError, type MachineApi } from '@tether/core';
import type { MachineCheck, MachineDirectory } from '../src/index.js';

export function localDirectory(machines: Record<string, MachineApi>): MachineDirectory {
  return {
    names: async () => Object.keys(machines),
    open: async (name) => {
      const machine = machines[name];
      if (!machine) throw new TetherError('UNKNOWN_MACHINE', `unknown machine: ${name}`);
      return machine;
    },
    check: async (name): Promise<MachineCheck> => {
      const started = performance.now();
      const health = await machines[name]!.health();
      const info = await machines[name]!.info();
      return { name, transport: 'local', ssh_ok: null, daemon_ok: health.ok, latency_ms: Math.round(performance.now() - started), checked_at: new Date().toISOString(), daemon_version: info.version };
    },
  };
}
