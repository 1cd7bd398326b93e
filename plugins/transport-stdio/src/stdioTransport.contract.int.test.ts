// The machine contract against a RemoteMachine whose channel runs over a child process's
// stdin/stdout: a real daemon on loopback, and as the bridge a small node process that pipes its
// stdio to the daemon's port, standing in for `docker exec -i box tether daemon bridge`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { RemoteMachine, createKernel } from '@tether/core';
import { machineContract } from '@tether/core/testing';
import filesystemPlugin from '@tether/plugin-filesystem';
import processPlugin from '@tether/plugin-process';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import stdioPlugin, { StdioTransport } from './index.js';

const dirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A bridge: stdin to the port, the port to stdout (what `tether daemon bridge --connect` does). */
const bridge = (port: number) => [
  process.execPath,
  '-e',
  `const s = require('node:net').connect(${port}, '127.0.0.1'); process.stdin.pipe(s); s.pipe(process.stdout); s.on('close', () => process.exit(0)); s.on('error', (e) => { console.error(e.message); process.exit(1); });`,
];

machineContract(
  'RemoteMachine over a bridge command (stdio transport)',
  async ({ workDir }) => {
    const daemon: Daemon = await startDaemon({
      listen: '127.0.0.1:0',
      dataDir: await tempDir('tether-stdio-daemon-'),
      plugins: [processPlugin, { plugin: filesystemPlugin, config: { roots: [workDir] } }],
    });
    const port = (daemon.address as { port: number }).port;
    const config = { name: 'piped', transport: 'stdio', command: bridge(port), token_command: ['cat', daemon.tokenFile!] };
    const transport = new StdioTransport();
    const machine = new RemoteMachine({ name: 'piped', connect: (signal) => transport.connect(config, signal) });
    return {
      machine,
      async close() {
        await machine.close();
        await daemon.close();
      },
    };
  },
  () => tempDir('tether-stdio-work-'),
);

it('as a plugin in a kernel; a bridge that cannot reach the daemon says so with its stderr', async () => {
  const daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: await tempDir('tether-stdio-daemon-'), plugins: [processPlugin] });
  const port = (daemon.address as { port: number }).port;
  const kernel = await createKernel({
    plugins: [stdioPlugin],
    machines: [
      { name: 'piped', transport: 'stdio', command: bridge(port), token_file: daemon.tokenFile! },
      { name: 'nowhere', transport: 'stdio', command: bridge(1), token_file: daemon.tokenFile! },
    ],
  });
  try {
    const run = await kernel.machine('piped').exec.start({ command: 'echo piped' });
    expect((await kernel.machine('piped').exec.wait(run.id)).exitCode).toBe(0);
    await expect(kernel.machine('nowhere').exec.list()).rejects.toMatchObject({ code: 'CONNECTION_LOST', message: expect.stringMatching(/did not reach the daemon \(exit 1: connect ECONNREFUSED/) });
  } finally {
    await kernel.close();
    await daemon.close();
  }
});
