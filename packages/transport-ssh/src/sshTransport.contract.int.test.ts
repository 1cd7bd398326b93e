// The machine contract against a RemoteMachine whose channel is a WebSocket carried by an SSH
// forwarded channel (a real sshd on loopback) to a real daemon: remote over SSH behaves exactly
// like local.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { RemoteMachine } from '@tether/core';
import { machineContract } from '@tether/core/testing';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import { SshTransport } from './index.js';
import { backends, keygen, knownHostsLine, removeTempDirs, startSshd, tempDir, type Sshd, USER } from '../test/support.js';

let dir: string;
let sshd: Sshd;
let transport: SshTransport;

beforeAll(async () => {
  dir = await tempDir();
  const home = join(dir, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true });
  sshd = await startSshd(join(dir, 'sshd'), [await keygen(join(home, '.ssh', 'id_ed25519'))]);
  await writeFile(join(home, '.ssh', 'known_hosts'), `${knownHostsLine(sshd)}\n`);
  transport = new SshTransport({ home, systemConfigFile: null, agent: null });
});

afterAll(async () => {
  transport?.close();
  await sshd?.stop();
  await removeTempDirs();
});

machineContract(
  'RemoteMachine over ssh (forwarded channel)',
  async ({ workDir }) => {
    const daemon: Daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(dir, 'daemon'), plugins: backends(workDir) });
    const port = (daemon.address as { port: number }).port;
    const config = { name: 'over-ssh', transport: 'ssh', ssh: `${USER}@127.0.0.1:${sshd.port}`, daemon_port: port, token_file: daemon.tokenFile! };
    const machine = new RemoteMachine({ name: 'over-ssh', connect: (signal) => transport.connect(config, signal) });
    return {
      machine,
      async close() {
        await machine.close();
        await daemon.close();
      },
    };
  },
  () => tempDir('tether-ssh-work-'),
);
