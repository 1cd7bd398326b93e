// The machine contract against a RemoteMachine that reaches a real daemon through a real relay:
// a pairing per connection, TLS 1.3 end to end with the daemon's pinned certificate, the
// daemon's token checked inside.
import { afterAll } from 'vitest';
import { machineContract } from '@tether/core/testing';
import { clientOf, removeTempDirs, startCloudDaemon, startRelay, tempDir } from '../test/support.js';

afterAll(removeTempDirs);

machineContract(
  'RemoteMachine through the cloud relay',
  async ({ workDir }) => {
    const relay = await startRelay();
    const cloud = await startCloudDaemon(relay, 'contract', { root: workDir });
    const machine = await clientOf(relay, 'contract', cloud);
    return {
      machine,
      async close() {
        await machine.close();
        await cloud.close();
        await relay.close();
      },
    };
  },
  tempDir,
);
