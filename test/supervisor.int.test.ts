// Executions outlive the daemon: a real daemon process (LevelDB store, the process plugin's
// supervisors) SIGKILLed while executions stream through pipes and a PTY, started again on the
// same data dir. Run `npm run build` first (the daemon and the supervisors run from dist/).
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { processesOf } from '@tether/core/testing';
import { eventually } from './support.js';
import { eventsOf, killDaemon, recordedHash, startDaemonProcess, streamProblems, supervisorsUnder, type RunningDaemon } from './supervisorSupport.js';

const roots: string[] = [];
const daemons: RunningDaemon[] = [];
const started: string[] = [];

async function newRoot(): Promise<{ root: string; dataDir: string; hashes: string }> {
  const root = await mkdtemp(join(tmpdir(), 'tether-sup-'));
  roots.push(root);
  return { root, dataDir: join(root, 'data'), hashes: root };
}

async function daemon(dataDir: string, main?: string): Promise<RunningDaemon> {
  const d = await startDaemonProcess(dataDir, { main });
  daemons.push(d);
  return d;
}

afterEach(async () => {
  for (const d of daemons.splice(0)) {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      // Stop it and what it runs, so nothing outlives the test.
      d.child.kill('SIGUSR2');
      await d.exited;
    }
    await d.machine.close().catch(() => undefined);
  }
});

afterAll(async () => {
  for (const id of started) for (const pid of processesOf(id)) process.kill(pid, 'SIGKILL');
  for (const root of roots) for (const pid of supervisorsUnder(root)) process.kill(pid, 'SIGKILL');
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

/**
 * A copy of the built daemon whose version string differs (a newer build): core, the store, the
 * ws transport and the process plugin copied under the repository's node_modules (so that their
 * own dependencies resolve as usual), core's VERSION rewritten. Returns its daemonMain.js.
 */
async function newerBuild(version: string): Promise<string> {
  const repo = join(import.meta.dirname, '..');
  const base = await mkdtemp(join(repo, 'node_modules', '.tether-newer-'));
  roots.push(base);
  for (const [name, dir] of [['core', 'packages/core'], ['store-level', 'packages/store-level'], ['transport-ws', 'packages/transport-ws'], ['plugin-process', 'plugins/process']]) {
    const to = join(base, 'node_modules', '@tether', name!);
    await cp(join(repo, dir!, 'package.json'), join(to, 'package.json'));
    await cp(join(repo, dir!, 'dist'), join(to, 'dist'), { recursive: true });
  }
  const versionFile = join(base, 'node_modules', '@tether', 'core', 'dist', 'version.js');
  await writeFile(versionFile, (await readFile(versionFile, 'utf8')).replace(/VERSION = '[^']*'/, `VERSION = '${version}'`));
  return join(base, 'node_modules', '@tether', 'transport-ws', 'dist', 'daemonMain.js');
}

/** Stops the daemon gracefully (SIGTERM: executions, if any ran, would be left running). */
async function stopDaemon(d: RunningDaemon): Promise<void> {
  d.child.kill('SIGTERM');
  expect(await d.exited).toEqual({ code: 0, signal: null });
}

interface Record {
  readonly execId: string;
  readonly supervisor: { readonly pid: number };
  readonly exit?: { readonly exitCode: number | null; readonly endedAt: number };
}

/** The record an execution's supervisor keeps in the data dir. */
async function recordOf(dataDir: string, id: string): Promise<Record> {
  const dir = join(dataDir, 'supervisors');
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.json')) continue;
    const record = JSON.parse(await readFile(join(dir, name), 'utf8')) as Record;
    if (record.execId === id) return record;
  }
  throw new Error(`no supervisor record for ${id}`);
}

const supervisorOf = async (dataDir: string, id: string) => (await recordOf(dataDir, id)).supervisor.pid;

const hashOf = async (file: string) => (await readFile(file, 'utf8')).slice(0, 64);
const flood = (hashes: string, bytes: string, code: number) =>
  `head -c ${bytes} /dev/urandom | tee >(sha256sum > ${hashes}/$TETHER_EXEC_ID.sha256); wait; exit ${code}`;

describe('executions under supervisors across daemon deaths', () => {
  it('kill -9 while executions stream (flood, trickle, stdin waiter, PTY): byte-identical output, real exit codes, contiguous seqs, no orphans', async () => {
    const { root, dataDir, hashes } = await newRoot();
    let d = await daemon(dataDir);
    const floodRun = await d.machine.exec.start({ command: flood(hashes, '24M', 4), shell: 'bash' });
    const trickle = await d.machine.exec.start({ command: 'for i in $(seq 1 150); do echo "line $i"; sleep 0.01; done; exit 5' });
    const waiter = await d.machine.exec.start({ command: 'cat; exit 6', stdin: true });
    const pty = await d.machine.exec.start({ command: 'for i in $(seq 1 100); do echo "pty $i"; sleep 0.01; done; exit 7', tty: { cols: 80, rows: 24 } });
    const ids = [floodRun.id, trickle.id, waiter.id, pty.id];
    started.push(...ids);
    await d.machine.exec.write(waiter.id, 'first\n', { writeId: 'w1' });
    await eventually(async () => (await d.machine.exec.get(floodRun.id)).bytes.stdout > 0, 20_000, 'the flood began');
    await eventually(async () => (await d.machine.exec.logs(waiter.id)).lines.length > 0, 20_000, 'the waiter echoed');

    // Killed mid-stream, then again right after the next daemon is up.
    await killDaemon(d);
    expect(processesOf(waiter.id).length).toBeGreaterThan(0);
    d = await daemon(dataDir);
    await killDaemon(d);
    d = await daemon(dataDir);

    // The repeated writeId is answered, not written twice.
    await d.machine.exec.write(waiter.id, 'first\n', { writeId: 'w1' });
    await d.machine.exec.write(waiter.id, 'second\n', { writeId: 'w2', eof: true });
    const expectations = [
      [floodRun.id, 4],
      [trickle.id, 5],
      [waiter.id, 6],
      [pty.id, 7],
    ] as const;
    for (const [id, code] of expectations) {
      expect(await d.machine.exec.wait(id)).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: code });
      expect(streamProblems(await eventsOf(d.machine, id))).toEqual([]);
    }
    const floodEvents = await eventsOf(d.machine, floodRun.id);
    expect(recordedHash(floodEvents)).toEqual({ sha256: await hashOf(join(hashes, `${floodRun.id}.sha256`)), bytes: 24 * 1024 * 1024 });
    expect((await d.machine.exec.logs(trickle.id)).lines.map((l) => l.line)).toEqual(Array.from({ length: 150 }, (_, i) => `line ${i + 1}`));
    expect((await d.machine.exec.logs(waiter.id)).lines.map((l) => l.line)).toEqual(['first', 'second']);
    expect((await d.machine.exec.logs(pty.id, { streams: ['pty'] })).lines.map((l) => l.line.replace(/\r$/, ''))).toEqual(Array.from({ length: 100 }, (_, i) => `pty ${i + 1}`));
    for (const id of ids) expect(processesOf(id)).toEqual([]);
    // Each supervisor leaves once its execution's end is recorded; the idle one kept warm, with its daemon.
    await stopDaemon(d);
    await eventually(() => supervisorsUnder(root).length === 0, 10_000, 'the supervisors left');
  });

  it('ended while no daemon ran: the real exit code and end time, a timeout enforced by the supervisor; a supervisor SIGKILLed: lost with the reason, its group gone', async () => {
    const { root, dataDir } = await newRoot();
    let d = await daemon(dataDir);
    const go = join(root, 'go');
    const quick = await d.machine.exec.start({ command: `while [ ! -e ${go} ]; do sleep 0.01; done; exit 9` });
    const timed = await d.machine.exec.start({ argv: ['sleep', '30'], timeoutMs: 300, killGraceMs: 200 });
    const orphaned = await d.machine.exec.start({ command: 'sleep 30 & sleep 30; wait' });
    started.push(quick.id, timed.id, orphaned.id);
    await eventually(() => processesOf(orphaned.id).length >= 2, 10_000, 'the tree runs');
    await killDaemon(d);

    // With no daemon: the command ends (told through a file), the timeout fires, a supervisor dies.
    expect(processesOf(quick.id).length).toBeGreaterThan(0);
    await writeFile(go, '');
    await eventually(async () => (await recordOf(dataDir, quick.id)).exit !== undefined, 10_000, 'the exit recorded by the supervisor');
    expect(processesOf(quick.id)).toEqual([]);
    const endedBefore = Date.now();
    await eventually(() => processesOf(timed.id).length === 0, 10_000, 'the timeout fired');
    process.kill(await supervisorOf(dataDir, orphaned.id), 'SIGKILL');

    d = await daemon(dataDir);
    const quickState = await d.machine.exec.wait(quick.id);
    expect(quickState).toMatchObject({ endReason: 'exited', exitCode: 9 });
    expect(quickState.finishedAt).toBeLessThanOrEqual(endedBefore);
    expect(await d.machine.exec.wait(timed.id)).toMatchObject({ endReason: 'timed_out' });
    const lost = await eventsOf(d.machine, orphaned.id);
    expect(lost.at(-1)).toMatchObject({ type: 'ExecutionLost', data: { reason: expect.stringMatching(/supervisor \(pid \d+\) is gone/) } });
    expect(processesOf(orphaned.id)).toEqual([]);
    for (const id of [quick.id, timed.id, orphaned.id]) expect(streamProblems(await eventsOf(d.machine, id))).toEqual([]);

    // A supervisor SIGKILLed while the daemon is attached.
    const attached = await d.machine.exec.start({ command: 'sleep 30 & sleep 30; wait' });
    started.push(attached.id);
    await eventually(() => processesOf(attached.id).length >= 2, 10_000, 'the tree runs');
    process.kill(await supervisorOf(dataDir, attached.id), 'SIGKILL');
    expect(await d.machine.exec.wait(attached.id)).toMatchObject({ endReason: 'lost' });
    expect((await eventsOf(d.machine, attached.id)).at(-1)).toMatchObject({ data: { reason: expect.stringMatching(/supervisor \(pid \d+\) died/) } });
    expect(processesOf(attached.id)).toEqual([]);

    // A cancel issued right after a restart reaches the whole group.
    const tree = await d.machine.exec.start({ command: 'sleep 30 & sleep 30; wait' });
    started.push(tree.id);
    await eventually(() => processesOf(tree.id).length >= 2, 10_000, 'the tree runs');
    await killDaemon(d);
    d = await daemon(dataDir);
    const cancelled = await d.machine.exec.cancel(tree.id, { graceMs: 500 });
    expect(cancelled.state).toMatchObject({ endReason: 'cancelled' });
    expect(processesOf(tree.id)).toEqual([]);
    await stopDaemon(d);
    await eventually(() => supervisorsUnder(root).length === 0, 10_000, 'the supervisors left');
  });

  it('daemon stop (SIGTERM) and a start of a build whose version string differs: executions keep running and end with their real exit codes', async () => {
    const { root, dataDir } = await newRoot();
    const newer = await newerBuild('0.1.1-newer');
    let d = await daemon(dataDir);
    expect((await d.machine.info()).version).toBe('0.1.0');
    const go = join(root, 'go');
    const waiting = await d.machine.exec.start({ command: `echo waiting; while [ ! -e ${go} ]; do sleep 0.01; done; echo done; exit 12` });
    const piped = await d.machine.exec.start({ command: 'cat; exit 13', stdin: true });
    started.push(waiting.id, piped.id);
    await eventually(async () => (await d.machine.exec.logs(waiting.id)).lines.length > 0, 10_000, 'it runs');
    await stopDaemon(d);
    expect(processesOf(waiting.id).length).toBeGreaterThan(0);

    d = await daemon(dataDir, newer);
    expect((await d.machine.info()).version).toBe('0.1.1-newer');
    expect(await d.machine.exec.get(waiting.id)).toMatchObject({ status: 'running' });
    await writeFile(go, '');
    await d.machine.exec.write(piped.id, 'through the newer daemon\n', { eof: true });
    expect(await d.machine.exec.wait(waiting.id)).toMatchObject({ endReason: 'exited', exitCode: 12 });
    expect(await d.machine.exec.wait(piped.id)).toMatchObject({ endReason: 'exited', exitCode: 13 });
    expect((await d.machine.exec.logs(waiting.id)).lines.map((l) => l.line)).toEqual(['waiting', 'done']);
    expect((await d.machine.exec.logs(piped.id)).lines.map((l) => l.line)).toEqual(['through the newer daemon']);
    for (const id of [waiting.id, piped.id]) expect(streamProblems(await eventsOf(d.machine, id))).toEqual([]);
    await stopDaemon(d);
    await eventually(() => supervisorsUnder(root).length === 0, 10_000, 'the supervisors left');
  });

  it('after kill -9 and a restart, resize and signals reach a re-attached terminal and a re-attached pipe', async () => {
    const { dataDir } = await newRoot();
    let d = await daemon(dataDir);
    const script = "trap 'echo \"size $(stty size)\"' WINCH; trap 'echo usr1; exit 9' USR1; echo ready; while :; do sleep 0.05; done";
    const tty = await d.machine.exec.start({ command: script, shell: 'bash', tty: { cols: 80, rows: 24 } });
    const pipe = await d.machine.exec.start({ command: "trap 'echo usr1; exit 8' USR1; echo ready; while :; do sleep 0.05; done", shell: 'bash' });
    started.push(tty.id, pipe.id);
    for (const id of [tty.id, pipe.id]) {
      await eventually(async () => (await d.machine.exec.logs(id, { streams: ['stdout', 'pty'] })).lines.some((l) => l.line.includes('ready')), 10_000, 'it runs');
    }
    await killDaemon(d);

    d = await daemon(dataDir);
    await d.machine.exec.resize(tty.id, 100, 30);
    await eventually(async () => (await d.machine.exec.logs(tty.id, { streams: ['pty'] })).lines.some((l) => l.line.includes('size 30 100')), 10_000, 'the resize reached the terminal');
    await d.machine.exec.signal(tty.id, 'USR1');
    await d.machine.exec.signal(pipe.id, 'SIGUSR1');
    expect(await d.machine.exec.wait(tty.id)).toMatchObject({ endReason: 'exited', exitCode: 9 });
    expect(await d.machine.exec.wait(pipe.id)).toMatchObject({ endReason: 'exited', exitCode: 8 });
    expect((await d.machine.exec.logs(pipe.id)).lines.map((l) => l.line)).toEqual(['ready', 'usr1']);
    for (const id of [tty.id, pipe.id]) expect(streamProblems(await eventsOf(d.machine, id))).toEqual([]);
  });

  it('a write with eof to commands that exit on the line they read: every write returns and every end is recorded', async () => {
    const { dataDir } = await newRoot();
    const d = await daemon(dataDir);
    // The command exits (and its stdin pipe is gone) before the end of input reaches the supervisor.
    const runs = await Promise.all(Array.from({ length: 8 }, () => d.machine.exec.start({ command: 'read x; echo "got $x"; exit 3', stdin: true })));
    started.push(...runs.map((r) => r.id));
    await Promise.all(runs.map((r) => d.machine.exec.write(r.id, 'go\n', { eof: true })));
    for (const r of runs) {
      expect(await d.machine.exec.wait(r.id)).toMatchObject({ endReason: 'exited', exitCode: 3, stdinClosed: true });
      expect((await d.machine.exec.logs(r.id)).lines.map((l) => l.line)).toEqual(['got go']);
    }
  });

  it('a state dir removed while no daemon runs: the supervisors end their commands and leave (nobody could attach again)', async () => {
    const { root, dataDir } = await newRoot();
    const d = await daemon(dataDir);
    const run = await d.machine.exec.start({ command: 'sleep 30 & sleep 30; wait' });
    started.push(run.id);
    await eventually(() => processesOf(run.id).length >= 2, 10_000, 'the tree runs');
    await killDaemon(d);
    await rm(dataDir, { recursive: true, force: true });
    await eventually(() => processesOf(run.id).length === 0 && supervisorsUnder(root).length === 0, 20_000, 'the command and the supervisors gone');
  });
});
