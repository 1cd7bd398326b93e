// The CLI on a machine with a real single-node Slurm (started by the test on loopback): exec
// run/start --backend slurm with Slurm's options as flags, the daemon's default_backend, and the
// daemon killed (SIGKILL) and restarted while jobs run: it finds them again by job id and their
// streams go on with nothing lost or repeated.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { slurmAvailability, startSlurmCluster, type SlurmCluster } from '@tether/plugin-slurm/testing';
import { BIN, alive, cliEnv, type CliEnv } from './support.js';

const availability = await slurmAvailability();
const skipReason = availability.ok ? '' : ` (skipped: ${availability.reason})`;

describe.skipIf(!availability.ok)(`tether with the Slurm backend${skipReason}`, () => {
  let cluster: SlurmCluster;
  let cli: CliEnv;
  const config = (daemon = '') =>
    [
      'plugins:',
      "  '@tether/plugin-slurm':",
      `    slurmConf: ${cluster.conf}`,
      `    spoolDir: ${join(cluster.dir, 'shared', 'jobs')}`,
      '    pollMs: 100',
      '    tailMs: 50',
      '    gpuProbe: true',
      daemon,
      '',
    ].join('\n');

  beforeAll(async () => {
    cluster = await startSlurmCluster();
    cli = cliEnv('tether-cli-slurm-');
    cli.writeConfig(config());
  });
  afterAll(async () => {
    await cli?.cleanup();
    await cluster?.stop();
  });

  it('exec run --backend slurm passes the Slurm flags to sbatch, streams the lines and exits with the job\'s code', async () => {
    const r = await cli.run([
      'exec', 'run', '--backend', 'slurm', '--partition', 'debug', '--cpus-per-task', '2', '--mem', '200M', '--nodes', '1',
      '--sbatch-arg=--comment=from-tether', '--cmd', 'echo "job=$SLURM_JOB_ID cpus=$SLURM_CPUS_PER_TASK"; echo oops >&2; exit 4',
    ]);
    expect(r.code, r.stderr).toBe(4);
    const lines = r.lines();
    const out = lines.find((l) => l['type'] === 'log' && l['stream'] === 'stdout');
    expect(out?.['line']).toMatch(/^job=\d+ cpus=2$/);
    expect(lines.find((l) => l['type'] === 'log' && l['stream'] === 'stderr')?.['line']).toBe('oops');
    expect(lines.at(-1)).toMatchObject({ type: 'finished', end_reason: 'exited', exit_code: 4 });
    const jobId = /job=(\d+)/.exec(out!['line'])![1]!;
    const shown = await cluster.slurm('scontrol', ['show', 'job', '-o', jobId]);
    expect(shown).toMatch(/\bPartition=debug\b/);
    expect(shown).toMatch(/\bComment=from-tether\b/);
    expect(shown).toMatch(/\bMinMemoryNode=200M\b/);
    expect(shown).toMatch(/\bNumNodes=1\b/);
  });

  it('gpu status reports the cluster\'s GPUs with their node and partitions (the test node has two stand-in GPUs)', async () => {
    const r = await cli.run(['gpu', 'status']);
    expect(r.code, r.stderr).toBe(0);
    const status = r.json();
    expect(status).toMatchObject({ available: true, processes: [] });
    expect(status['gpus']).toEqual([0, 1].map((index) => ({
      index, uuid: `slurm:${cluster.node}:${index}`, name: 'fake', node: cluster.node, partitions: ['debug', 'gpu', 'held'], allocated: false,
      memory_used_mib: null, memory_total_mib: null, utilization_gpu: null, temperature_c: null,
    })));
  });

  it('a Slurm flag alone means --backend slurm; with --backend process it is a usage error; Slurm\'s refusal is the JSON error', async () => {
    const implied = await cli.run(['exec', 'run', '--partition', 'debug', '--cmd', 'echo "job=$SLURM_JOB_ID"']);
    expect(implied.code, implied.stderr).toBe(0);
    expect(implied.lines().find((l) => l['type'] === 'log')?.['line']).toMatch(/^job=\d+$/);

    const mixed = await cli.run(['exec', 'run', '--backend', 'process', '--gres', 'gpu:1', '--cmd', 'true']);
    expect(mixed.code).toBe(2);
    expect(mixed.error()).toMatchObject({ code: 'USAGE', message: expect.stringContaining('--gres') });

    const refused = await cli.run(['exec', 'start', '--backend', 'slurm', '--partition', 'no-such-partition', '--cmd', 'true']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    expect(refused.error().message).toMatch(/invalid partition/i);
  });

  it('MCP exec_run with backend slurm and Slurm options runs a job; a bad option is a tool error', async () => {
    const client = new Client({ name: 'tether-test', version: '0.0.0' });
    const env = Object.fromEntries(Object.entries(cli.env).filter((e): e is [string, string] => e[1] !== undefined));
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp'], env, cwd: cli.home, stderr: 'pipe' }));
    try {
      const call = async (args: Record<string, unknown>) => {
        const result = (await client.callTool({ name: 'exec_run', arguments: args })) as { isError?: boolean; content: Array<{ text: string }> };
        return { isError: result.isError === true, json: JSON.parse(result.content[0]!.text) as Record<string, any> };
      };
      const ran = await call({ cmd: 'echo "job=$SLURM_JOB_ID partition=$SLURM_JOB_PARTITION"', backend: 'slurm', slurm: { partition: 'gpu', cpus_per_task: 1 } });
      expect(ran.isError).toBe(false);
      expect(ran.json).toMatchObject({ status: 'finished', end_reason: 'exited', exit_code: 0, stdout: expect.stringMatching(/^job=\d+ partition=gpu$/) });
      const mixed = await call({ cmd: 'true', backend: 'process', slurm: { gres: 'gpu:1' } });
      expect(mixed.isError).toBe(true);
      expect(JSON.stringify(mixed.json)).toMatch(/Slurm option/);
    } finally {
      await client.close();
    }
  });

  it('daemon stop leaves Slurm jobs running for the next daemon; daemon stop --cancel-running cancels them', async () => {
    const gate = join(cluster.dir, 'shared', 'go-stopped');
    const job = (await cli.run(['exec', 'start', '--backend', 'slurm', '--cmd', `echo one; while [ ! -e ${gate} ]; do sleep 0.1; done; echo two; exit 3`])).json();
    await expect.poll(async () => (await cli.run(['exec', 'logs', '--id', job['exec_id'], '--full'])).lines().length, { timeout: 30_000, interval: 100 }).toBeGreaterThan(0);
    const jobId = (await cli.run(['exec', 'result', '--id', job['exec_id']])).json()['backend_ref']['jobId'] as string;
    const stopped = await cli.run(['daemon', 'stop']);
    expect(stopped.json()).toMatchObject({ stopped: true, cancel_running: false });
    // Slurm still runs it with no daemon there; it ends meanwhile and the next daemon records its real end.
    expect(await cluster.slurm('squeue', ['-h', '-j', jobId, '-o', '%T'])).toMatch(/RUNNING/);
    writeFileSync(gate, '');
    const watched = await cli.run(['exec', 'watch', '--id', job['exec_id'], '--full']);
    expect(watched.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['one', 'two']);
    expect(watched.lines().at(-1)).toMatchObject({ type: 'summary', end_reason: 'exited', exit_code: 3 });

    const doomed = (await cli.run(['exec', 'start', '--backend', 'slurm', '--cmd', 'echo started; sleep 300'])).json();
    await expect.poll(async () => (await cli.run(['exec', 'logs', '--id', doomed['exec_id'], '--full'])).lines().length, { timeout: 30_000, interval: 100 }).toBeGreaterThan(0);
    const doomedJob = (await cli.run(['exec', 'result', '--id', doomed['exec_id']])).json()['backend_ref']['jobId'] as string;
    expect((await cli.run(['daemon', 'stop', '--cancel-running'])).json()).toMatchObject({ stopped: true, cancel_running: true });
    expect((await cli.run(['exec', 'result', '--id', doomed['exec_id']])).json()).toMatchObject({ status: 'finished', end_reason: 'cancelled' });
    await expect.poll(async () => (await cluster.slurm('squeue', ['-h', '-j', doomedJob, '-o', '%T']).catch(() => '')).trim(), { timeout: 30_000, interval: 200 }).not.toMatch(/RUNNING|PENDING/);
  });

  it('the daemon killed while jobs run: the next daemon re-attaches by job id and the streams go on, nothing lost or repeated', async () => {
    const gate = (name: string) => join(cluster.dir, 'shared', name);
    // One job ends while no daemon runs, the other after the new daemon has started.
    const waitFor = (name: string) => `while [ ! -e ${gate(name)} ]; do sleep 0.1; done`;
    const early = (await cli.run(['exec', 'start', '--backend', 'slurm', '--cmd', `echo before; ${waitFor('go-early')}; echo after; exit 7`])).json();
    const late = (await cli.run(['exec', 'start', '--backend', 'slurm', '--cmd', `for i in 1 2 3; do echo a$i; done; ${waitFor('go-late')}; echo b; exit 0`])).json();
    for (const id of [early['exec_id'], late['exec_id']]) {
      await expect
        .poll(async () => (await cli.run(['exec', 'logs', '--id', id, '--full'])).lines().length, { timeout: 30_000, interval: 100 })
        .toBeGreaterThan(0);
    }
    // And one still pending in the DOWN partition: it starts (and ends) while no daemon runs.
    const pending = (await cli.run(['exec', 'start', '--backend', 'slurm', '--partition', 'held', '--cmd', 'echo ran-unwatched; exit 5'])).json();
    await expect.poll(async () => (await cli.run(['exec', 'result', '--id', pending['exec_id']])).json()['queue_reason'], { timeout: 30_000, interval: 100 }).toBe('PartitionDown');
    const status = (await cli.run(['daemon', 'status'])).json();
    expect(status).toMatchObject({ running: true });
    process.kill(status['pid'], 'SIGKILL');
    await expect.poll(() => alive(status['pid']), { timeout: 10_000, interval: 50 }).toBe(false);

    // Meanwhile one job ends, the pending one runs; and the next daemon runs executions on Slurm by default.
    writeFileSync(gate('go-early'), '');
    await cluster.slurm('scontrol', ['update', 'PartitionName=held', 'State=UP']);
    cli.writeConfig(config('daemon:\n  default_backend: slurm'));

    const watched = await cli.run(['exec', 'watch', '--id', early['exec_id'], '--full']);
    expect(watched.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['before', 'after']);
    expect(watched.lines().at(-1)).toMatchObject({ type: 'summary', end_reason: 'exited', exit_code: 7 });
    expect((await cli.run(['daemon', 'status'])).json()['pid']).not.toBe(status['pid']);

    const lateState = (await cli.run(['exec', 'result', '--id', late['exec_id']])).json();
    expect(lateState).toMatchObject({ status: 'running', backend: 'slurm', backend_ref: { jobId: expect.stringMatching(/^\d+$/), nodes: cluster.node } });
    writeFileSync(gate('go-late'), '');
    const lateWatched = await cli.run(['exec', 'watch', '--id', late['exec_id'], '--full']);
    const logs = lateWatched.lines().filter((l) => l['type'] === 'log');
    expect(logs.map((l) => l['line'])).toEqual(['a1', 'a2', 'a3', 'b']);
    const seqs = logs.map((l) => l['seq'] as number);
    // In order; lines read in one piece share their event's seq, the one after the restart comes later.
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(seqs[3]).toBeGreaterThan(seqs[2]!);
    expect(lateWatched.lines().at(-1)).toMatchObject({ type: 'summary', end_reason: 'exited', exit_code: 0 });

    const unwatched = await cli.run(['exec', 'watch', '--id', pending['exec_id'], '--full']);
    expect(unwatched.lines().filter((l) => l['type'] === 'log').map((l) => l['line'])).toEqual(['ran-unwatched']);
    expect(unwatched.lines().at(-1)).toMatchObject({ type: 'summary', end_reason: 'exited', exit_code: 5 });
    const pendingState = (await cli.run(['exec', 'result', '--id', pending['exec_id']])).json();
    expect(pendingState).toMatchObject({ backend_ref: { partition: 'held', nodes: cluster.node } });
    expect(pendingState['started_at']).not.toBeNull();

    // default_backend: slurm in the daemon's config.
    const plain = await cli.run(['exec', 'run', '--cmd', 'echo "job=${SLURM_JOB_ID:-none}"']);
    expect(plain.lines().find((l) => l['type'] === 'log')?.['line']).toMatch(/^job=\d+$/);
    expect(existsSync(gate('go-late'))).toBe(true);
  });
});
