// Fault rounds: a real daemon process SIGKILLed at random moments (while it starts and
// re-attaches, while executions start, while output floods and trickles through pipes and a
// PTY), round after round on one data dir. Afterwards every execution either ran to its real
// exit code with byte-identical output and contiguous seqs, or never started (lost, no output);
// nothing tether started is left running. `TETHER_FAULT_ROUNDS` sets the rounds (default 100);
// bench/supervisor.soak.mjs runs many more. Run `npm run build` first.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { ExecutionState, RemoteMachine } from '@tether/core';
import { liveProcesses, processesOf } from '@tether/core/testing';
import { eventually } from './support.js';
import { eventsOf, launchDaemonProcess, recordedHash, streamProblems, supervisorsUnder, type LaunchedDaemon } from './supervisorSupport.js';

const ROUNDS = Number(process.env['TETHER_FAULT_ROUNDS'] ?? 100);
/** At most this many executions unfinished at a time (each has a supervisor process). */
const MAX_UNFINISHED = 4;
/** Daemons (each on its own data dir) killed side by side, so that the rounds fit the time. */
const LANES = Number(process.env['TETHER_FAULT_LANES'] ?? 2);

const roots: string[] = [];
const launched: LaunchedDaemon[] = [];
afterAll(async () => {
  for (const d of launched) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  for (const root of roots) for (const pid of supervisorsUnder(root)) process.kill(pid, 'SIGKILL');
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

/** A small seeded generator, so a failing run can be told apart and its seed reported. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Expected {
  readonly kind: 'flood' | 'trickle' | 'pty';
  readonly code: number;
  /** flood: the file the producer wrote and then printed. */
  readonly file?: string;
  /** trickle and pty: the lines. */
  readonly lines?: string[];
}

/** The TETHER_EXEC_ID of every live process that has one. */
function ourExecutionsInProc(): Set<string> {
  const ids = new Set<string>();
  // Collects while it looks: no pid is wanted, only the ids.
  liveProcesses((pid) => {
    const entry = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('TETHER_EXEC_ID='));
    if (entry) ids.add(entry.slice('TETHER_EXEC_ID='.length));
    return false;
  });
  return ids;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it(`${ROUNDS} rounds of SIGKILL at random moments (${LANES} daemons side by side): every execution ends with its real exit code and byte-identical output, or never started; no orphans`, async () => {
  const seed = Number(process.env['TETHER_FAULT_SEED'] ?? Date.now() % 2 ** 31);
  const rounds = Array.from({ length: LANES }, (_, lane) => Math.floor(ROUNDS / LANES) + (lane < ROUNDS % LANES ? 1 : 0));
  const results = await Promise.all(rounds.map((count, lane) => runLane(seed + lane, count)));
  expect(results.flatMap((r) => r.problems)).toEqual([]);
  expect(results.reduce((sum, r) => sum + r.kills, 0)).toBe(ROUNDS);
  // Most of the executions ran (a few may be lost because the daemon died before the spawn).
  expect(results.reduce((sum, r) => sum + r.ran, 0)).toBeGreaterThan(results.reduce((sum, r) => sum + r.executions, 0) / 2);
}, Math.max(240_000, ROUNDS * 5_000));

/** One data dir, `count` daemons SIGKILLed one after the other, then checked. */
async function runLane(seed: number, count: number): Promise<{ problems: string[]; kills: number; ran: number; executions: number }> {
  const random = generator(seed);
  const root = await mkdtemp(join(tmpdir(), 'tether-faults-'));
  roots.push(root);
  const dataDir = join(root, 'data');
  const expected = new Map<string, Expected>();
  let kills = 0;

  const newExecution = (machine: RemoteMachine, round: number, index: number): Promise<string | undefined> => {
    const which = random();
    const code = 1 + Math.floor(random() * 100);
    const tag = `r${round}x${index}`;
    let command: string;
    let expectation: Expected;
    if (which < 0.4) {
      const file = join(root, `${tag}.bin`);
      const bytes = Math.floor(random() * 4 * 1024 * 1024) + 1;
      command = `head -c ${bytes} /dev/urandom > ${file} && cat ${file}; exit ${code}`;
      expectation = { kind: 'flood', code, file };
    } else {
      const count = 20 + Math.floor(random() * 60);
      const lines = Array.from({ length: count }, (_, i) => `${tag} ${i + 1}`);
      command = `for i in $(seq 1 ${count}); do echo "${tag} $i"; sleep 0.005; done; exit ${code}`;
      expectation = { kind: which < 0.75 ? 'trickle' : 'pty', code, lines };
    }
    expected.set(command, expectation);
    return machine.exec.start({ command, ...(expectation.kind === 'pty' ? { tty: { cols: 120, rows: 40 } } : {}) }).then(
      (state) => state.id,
      () => undefined,
    );
  };

  for (let round = 0; round < count; round++) {
    const daemon = launchDaemonProcess(dataDir);
    launched.push(daemon);
    if (random() < 0.45) {
      // While it starts: loads, opens the store, re-attaches, ingests what was spooled.
      await pause(random() * 500);
    } else {
      const running = await daemon.ready.catch(() => undefined);
      if (running) {
        const unfinished = await running.machine.exec.list({ status: 'running' }).then((page) => page.items.length, () => MAX_UNFINISHED);
        const starts = Math.min(1 + Math.floor(random() * 2), MAX_UNFINISHED - unfinished);
        const ids = Array.from({ length: starts }, (_, i) => newExecution(running.machine, round, i));
        if (random() < 0.2) {
          // While the executions are being started.
          await pause(random() * 30);
        } else {
          // Once they run (their output flowing), at a random moment.
          for (const id of await Promise.all(ids)) {
            if (id) await eventually(async () => (await running.machine.exec.get(id)).status !== 'queued', 30_000, `${id} started`);
          }
          await pause(random() * 100);
        }
      }
    }
    daemon.child.kill('SIGKILL');
    kills++;
    await daemon.exited;
    await daemon.ready.then((d) => d.machine.close(), () => undefined).catch(() => undefined);
  }

  const last = launchDaemonProcess(dataDir);
  launched.push(last);
  const d = await last.ready;
  const states: ExecutionState[] = [];
  let cursor: string | undefined;
  do {
    const page = await d.machine.exec.list({ limit: 500, cursor });
    states.push(...page.items);
    cursor = page.cursor;
  } while (cursor);

  const problems: string[] = [];
  // What the store says runs is what /proc shows: nothing of a finished execution is left, and
  // every process of an execution belongs to one that is running.
  for (const state of states) {
    const pids = processesOf(state.id);
    if (state.status === 'finished' && pids.length > 0) problems.push(`${state.id}: finished, but ${pids.join(',')} still run`);
  }
  const running = new Set(states.filter((s) => s.status !== 'finished').map((s) => s.id));
  for (const id of ourExecutionsInProc()) if (!running.has(id) && states.some((s) => s.id === id)) problems.push(`${id}: in /proc but not running`);
  let ran = 0;
  for (const listed of states) {
    const state = await d.machine.exec.wait(listed.id);
    const want = expected.get(state.spec?.command ?? '');
    const where = `${state.id} (${want?.kind}, seed ${seed})`;
    if (!want) {
      problems.push(`${where}: not started by this test`);
      continue;
    }
    const events = await eventsOf(d.machine, state.id);
    problems.push(...streamProblems(events).map((p) => `${where}: ${p}`));
    if (state.endReason === 'lost') {
      // Only an execution whose command never started may be lost (the daemon died before its
      // supervisor got the spawn): nothing recorded, nothing produced.
      const output = events.some((e) => e.type === 'OutputProduced');
      const produced = want.file !== undefined && existsSync(want.file);
      if (output || produced || state.pid !== null) problems.push(`${where}: lost after it started (${JSON.stringify(events.at(-1))})`);
      continue;
    }
    ran++;
    if (state.endReason !== 'exited' || state.exitCode !== want.code) {
      problems.push(`${where}: ended ${state.endReason} ${state.exitCode}, expected exit ${want.code}`);
      continue;
    }
    if (want.kind === 'flood') {
      const data = await readFile(want.file!);
      const got = recordedHash(events);
      if (got.sha256 !== createHash('sha256').update(data).digest('hex') || got.bytes !== data.byteLength) {
        problems.push(`${where}: stdout differs (${got.bytes} bytes recorded, ${data.byteLength} written)`);
      }
    } else {
      const stream = want.kind === 'pty' ? 'pty' : 'stdout';
      const text = Buffer.concat(events.flatMap((e) => (e.type === 'OutputProduced' && e.data.stream === stream ? [Buffer.from(e.data.data)] : []))).toString('utf8');
      const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
      if (lines.at(-1) === '') lines.pop();
      if (JSON.stringify(lines) !== JSON.stringify(want.lines)) problems.push(`${where}: output differs: ${JSON.stringify(lines.slice(0, 3))}…`);
    }
  }
  for (const state of states) {
    const left = processesOf(state.id);
    if (left.length > 0) problems.push(`${state.id}: processes left ${left.join(',')}`);
  }
  last.child.kill('SIGTERM');
  const exit = await last.exited;
  if (exit.code !== 0) problems.push(`the last daemon exited ${JSON.stringify(exit)}`);
  await d.machine.close().catch(() => undefined);
  const lingering = await eventually(() => supervisorsUnder(root).length === 0, 20_000, 'the supervisors left').then(
    () => [],
    () => supervisorsUnder(root),
  );
  if (lingering.length > 0) {
    const dir = join(dataDir, 'supervisors');
    const files = readdirSync(dir).map((name) => (name.endsWith('.json') ? `${name} ${readFileSync(join(dir, name), 'utf8')}` : name)).join(' ');
    const described = lingering.map((pid) => `${pid} (${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')})`);
    problems.push(`supervisors still there after the last daemon stopped: ${described.join('; ')}; files: ${files}`);
  }
  return { problems, kills, ran, executions: states.length };
}
