import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile, chmod, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A single-node Slurm cluster on loopback, in its own temp directory, for tests and benchmarks. */
export interface SlurmCluster {
  /** Its slurm.conf: pass as `SLURM_CONF` to every Slurm command. */
  readonly conf: string;
  /** The environment for Slurm commands (`SLURM_CONF` set). */
  readonly env: NodeJS.ProcessEnv;
  /** The temp directory holding its state, logs and a `shared/` directory for job output. */
  readonly dir: string;
  /** The node's name (`hostname -s`). */
  readonly node: string;
  /**
   * Partitions of the one node: `debug` (default), `gpu`, and `held` (DOWN: its jobs stay pending
   * with reason PartitionDown until it is set UP). The node declares DECLARED_CPUS CPUs and has 2
   * stand-in GPUs (`gpu:fake:2`) as generic resources.
   */
  readonly partitions: readonly string[];
  /** Runs a Slurm command (`scontrol`, `sinfo`…) against this cluster; rejects when it fails. Resolves its stdout. */
  slurm(command: string, args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

export type SlurmAvailability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const BINARIES = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'scancel', 'sinfo'];

/** Whether this machine has what a local cluster needs (the Debian packages and root). */
export async function slurmAvailability(): Promise<SlurmAvailability> {
  const missing: string[] = [];
  for (const binary of BINARIES) {
    try {
      await run('sh', ['-c', `command -v ${binary}`]);
    } catch {
      missing.push(binary);
    }
  }
  if (missing.length > 0) {
    return { ok: false, reason: `Slurm is not installed (missing ${missing.join(', ')}; apt-get install slurmctld slurmd slurm-client munge)` };
  }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'slurmd must run as root to start jobs, and these tests are not root' };
  return { ok: true };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** The node's real memory in MiB, from `slurmd -C`. */
async function nodeMemoryMiB(): Promise<number> {
  const { stdout } = await run('slurmd', ['-C']);
  const memory = /RealMemory=(\d+)/.exec(stdout)?.[1];
  if (!memory) throw new Error(`slurmd -C printed no RealMemory: ${stdout}`);
  return Number(memory);
}

/** CPUs the test node declares (more than a small machine has, so many small jobs run at once; jobs mostly sleep). */
const DECLARED_CPUS = 32;

/**
 * Starts munged, slurmctld and slurmd (foreground children) with a fresh munge key and a config
 * written into a temp directory, and waits until the node is idle. Ports are picked free.
 */
export async function startSlurmCluster(): Promise<SlurmCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tether-slurm-'));
  const children: ChildProcess[] = [];
  const node = hostname().split('.')[0]!;
  const stop = async () => {
    await Promise.all(
      children.reverse().map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const sub of ['munge', 'ctld', 'd', 'shared', 'log']) await mkdir(join(dir, sub), { recursive: true });
    await chmod(join(dir, 'munge'), 0o700);
    const key = join(dir, 'munge', 'munge.key');
    await run('dd', ['if=/dev/urandom', `of=${key}`, 'bs=1024', 'count=1'], {});
    await chmod(key, 0o400);
    const socket = join(dir, 'munge', 'munge.socket');
    const munged = spawn(
      'munged',
      ['--foreground', '--force', `--socket=${socket}`, `--key-file=${key}`, `--pid-file=${join(dir, 'munge', 'munged.pid')}`,
        `--log-file=${join(dir, 'log', 'munged.log')}`, `--seed-file=${join(dir, 'munge', 'seed')}`],
      { stdio: 'ignore' },
    );
    children.push(munged);
    await waitFor(async () => (await readFile(socket).then(() => true, (e: NodeJS.ErrnoException) => e.code !== 'ENOENT')), 'munged to create its socket', munged);

    const [ctldPort, dPort] = [await freePort(), await freePort()];
    const conf = join(dir, 'slurm.conf');
    const memory = await nodeMemoryMiB();
    await writeFile(
      conf,
      [
        'ClusterName=tether',
        'SlurmctldHost=localhost',
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${dPort}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        `AuthInfo=socket=${socket}`,
        'CredType=cred/munge',
        `StateSaveLocation=${join(dir, 'ctld')}`,
        `SlurmdSpoolDir=${join(dir, 'd')}`,
        `SlurmctldPidFile=${join(dir, 'ctld', 'slurmctld.pid')}`,
        `SlurmdPidFile=${join(dir, 'd', 'slurmd.pid')}`,
        `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
        `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core_Memory',
        'SchedulerType=sched/builtin',
        // Try pending jobs at once on submit and completion, not on the default 2 s cycle.
        'SchedulerParameters=sched_min_interval=0,batch_sched_delay=0',
        'DefMemPerCPU=64',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'MpiDefault=none',
        'ReturnToService=2',
        'KillWait=2',
        'MinJobAge=600',
        'InactiveLimit=0',
        // The node declares the CPUs written below rather than what it has.
        'SlurmdParameters=config_overrides',
        'GresTypes=gpu',
        `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${DECLARED_CPUS} Boards=1 SocketsPerBoard=1 CoresPerSocket=${DECLARED_CPUS} ThreadsPerCore=1 RealMemory=${memory} Gres=gpu:fake:2 State=UNKNOWN`,
        `PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP`,
        `PartitionName=gpu Nodes=${node} MaxTime=INFINITE State=UP`,
        // Takes jobs but starts none until it is set UP (`scontrol update PartitionName=held State=UP`): a job held pending on purpose.
        `PartitionName=held Nodes=${node} MaxTime=INFINITE State=DOWN`,
        '',
      ].join('\n'),
    );
    // Two stand-in GPU device nodes (character devices like /dev/null): Slurm counts GRES by file.
    for (const i of [0, 1]) await run('mknod', [join(dir, `gpu${i}`), 'c', '1', '3']);
    await writeFile(join(dir, 'gres.conf'), `NodeName=${node} Name=gpu Type=fake File=${join(dir, 'gpu[0-1]')}\n`);
    const env = { ...process.env, SLURM_CONF: conf };
    const ctld = spawn('slurmctld', ['-D', '-i', '-f', conf], { stdio: 'ignore', env });
    children.push(ctld);
    await waitFor(async () => run('scontrol', ['ping'], { env }).then((r) => r.stdout.includes('UP'), () => false), 'slurmctld to answer', ctld);
    const slurmd = spawn('slurmd', ['-D', '-f', conf, '-N', node], { stdio: 'ignore', env });
    children.push(slurmd);
    await waitFor(
      async () => run('sinfo', ['-h', '-n', node, '-o', '%t'], { env }).then((r) => /^idle/m.test(r.stdout), () => false),
      'the node to become idle',
      slurmd,
    );
    const slurm = async (command: string, args: readonly string[]) => (await run(command, [...args], { env })).stdout;
    return { conf, env, dir, node, partitions: ['debug', 'gpu', 'held'], slurm, stop };
  } catch (error) {
    const logs = await readFile(join(dir, 'log', 'slurmctld.log'), 'utf8').catch(() => '');
    const dlog = await readFile(join(dir, 'log', 'slurmd.log'), 'utf8').catch(() => '');
    await stop();
    throw new Error(`${(error as Error).message}\n--- slurmctld.log (tail)\n${logs.slice(-2000)}\n--- slurmd.log (tail)\n${dlog.slice(-2000)}`);
  }
}

async function waitFor(check: () => Promise<boolean>, what: string, child: ChildProcess, withinMs = 30_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${child.spawnfile} exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
