// Fan-out: --machine a,b and --machine @label over two ws daemons on loopback (each with its own
// fake nvidia-smi), one result per machine; GPU placement with --gpu-gate over a label.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import processPlugin from '@tether/plugin-process';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import { FakeNvidiaSmi } from './fakeNvidiaSmi.js';
import { cliEnv, closedPort, type CliEnv } from './support.js';

let cli: CliEnv;
const daemons: Daemon[] = [];
const gpus: FakeNvidiaSmi[] = [];

beforeAll(async () => {
  cli = cliEnv('tether-cli-fanout-');
  for (const name of ['box1', 'box2']) {
    const gpu = new FakeNvidiaSmi(join(cli.root, `gpu-${name}`));
    gpus.push(gpu);
    mkdirSync(join(cli.root, name));
    daemons.push(
      await startDaemon({
        listen: '127.0.0.1:0',
        dataDir: join(cli.root, name, 'daemon'),
        plugins: [processPlugin, { plugin: gpuPlugin, config: { command: gpu.command, cacheMs: 0 } }],
      }),
    );
  }
  cli.writeConfig(`machines:
  - name: box1
    addr: ${daemons[0]!.url}
    token_file: ${daemons[0]!.tokenFile}
    labels: [gpu, lab]
  - name: box2
    addr: ${daemons[1]!.url}
    token_file: ${daemons[1]!.tokenFile}
    labels: [gpu]
  - name: dead
    addr: 127.0.0.1:${await closedPort()}
    token: ${'f'.repeat(64)}
    labels: [lab]
`);
});
afterAll(async () => {
  for (const daemon of daemons) await daemon.close();
  await cli?.cleanup();
});

describe('fan-out', () => {
  it('machine check --machine @gpu: one Status line per machine, in config order', async () => {
    const checked = await cli.run(['machine', 'check', '--machine', '@gpu']);
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.lines()).toEqual([expect.objectContaining({ name: 'box1', transport: 'ws', daemon_ok: true }), expect.objectContaining({ name: 'box2', daemon_ok: true })]);
    const withDead = await cli.run(['machine', 'check', '--machine', '@lab', '--timeout', '3s']);
    expect(withDead.lines().map((s) => [s.name, s.daemon_ok])).toEqual([['box1', true], ['dead', false]]);
    expect(withDead.code).toBe(6);
  });

  it('exec run --machine box1,box2: lines tagged with the machine, a finished line each, the first non-zero exit code', async () => {
    const run = await cli.run(['exec', 'run', '--machine', 'box1,box2', '--cmd', 'echo "on $TETHER_EXEC_ID"; exit 3']);
    const lines = run.lines();
    for (const machine of ['box1', 'box2']) {
      const mine = lines.filter((l) => l.machine === machine);
      expect(mine.map((l) => l.type)).toEqual(['started', 'log', 'finished']);
      expect(mine[2]).toMatchObject({ end_reason: 'exited', exit_code: 3 });
    }
    expect(run.code).toBe(3);
    // A machine that cannot be reached is one error line; the others still run.
    const partial = await cli.run(['exec', 'run', '--machine', 'box2,dead', '--cmd', 'echo ok']);
    const byMachine = partial.lines();
    expect(byMachine.filter((l) => l.machine === 'box2').map((l) => l.type)).toEqual(['started', 'log', 'finished']);
    expect(byMachine.find((l) => l.machine === 'dead')).toEqual({ machine: 'dead', error: expect.objectContaining({ code: 'CONNECTION_LOST', message: expect.stringContaining('connection refused') }) });
    expect(partial.code).toBe(6);
  });

  it('exec start and gpu status over a label: one line per machine', async () => {
    const started = await cli.run(['exec', 'start', '--machine', '@gpu', '--cmd', 'sleep 0.1']);
    expect(started.code, started.stderr).toBe(0);
    expect(started.lines()).toEqual([
      { exec_id: expect.any(String), machine: 'box1', status: 'running' },
      { exec_id: expect.any(String), machine: 'box2', status: 'running' },
    ]);
    gpus[0]!.set({ busy: true });
    gpus[1]!.set({ busy: false });
    const status = await cli.run(['gpu', 'status', '--machine', '@gpu']);
    expect(status.lines().map((l) => [l.machine, l.available, l.gpus[0].utilization_gpu])).toEqual([
      ['box1', true, 90],
      ['box2', true, 0],
    ]);
  });

  it('exec start --machine @gpu --gpu-gate: placed on the machine whose GPU is free', async () => {
    gpus[0]!.set({ busy: true });
    gpus[1]!.set({ busy: false });
    const first = await cli.run(['exec', 'start', '--machine', '@gpu', '--gpu-gate', '--cmd', 'echo trained']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({ machine: 'box2', placed: true, candidates: ['box1', 'box2'] });
    gpus[0]!.set({ busy: false });
    gpus[1]!.set({ busy: true });
    const second = (await cli.run(['exec', 'start', '--machine', '@gpu', '--gpu-gate', '--cmd', 'echo trained'])).json();
    expect(second).toMatchObject({ machine: 'box1', placed: true });
    gpus[0]!.set({ busy: true });
    const none = await cli.run(['exec', 'start', '--machine', '@gpu', '--gpu-gate', '--gpu-gate-timeout', '300ms', '--cmd', 'true']);
    expect([none.code, none.stdout, none.error().code]).toEqual([8, '', 'GATE_TIMEOUT']);
  });

  it('an unknown label or name in the list: unknown machine, exit 4, nothing on stdout', async () => {
    const label = await cli.run(['machine', 'check', '--machine', '@nope']);
    expect([label.code, label.stdout]).toEqual([4, '']);
    expect(label.error()).toMatchObject({ code: 'UNKNOWN_MACHINE', message: expect.stringContaining('unknown machine'), hint: expect.stringContaining('@gpu') });
    const name = await cli.run(['exec', 'run', '--machine', 'box1,nowhere', '--cmd', 'true']);
    expect([name.code, name.stdout, name.error().code]).toEqual([4, '', 'UNKNOWN_MACHINE']);
  });
});
