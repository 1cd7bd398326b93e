// The machine contract against a RemoteMachine talking to a real daemon over WebSocket: real
// listener on 127.0.0.1:0, real LevelDB, real processes.
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { machineContract } from '@tether/core/testing';
import { readToken, remoteMachine, startDaemon } from './index.js';
import { backends, removeTempDirs, tempDir } from '../test/support.js';

afterAll(removeTempDirs);

machineContract(
  'RemoteMachine over WebSocket to a daemon',
  async ({ workDir }) => {
    const dataDir = join(await tempDir(), 'daemon');
    const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir, plugins: backends(workDir) });
    const machine = remoteMachine(daemon.url, { token: await readToken(daemon.tokenFile!), name: 'ws-daemon' });
    return {
      machine,
      async close() {
        await machine.close();
        await daemon.close();
      },
    };
  },
  tempDir,
);
