import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTetherError } from '../errors.js';
import type { StoredEvent } from '../events.js';
import type { ExecStartParams, MachineApi } from '../machine.js';
import { eventually } from './eventually.js';

export interface MachineUnderTest {
  readonly machine: MachineApi;
  close(): Promise<void>;
}

/**
 * Creates the machine for the suite. It must have the process and filesystem backends, with
 * `workDir` (a fresh, empty directory) among the filesystem roots.
 */
export type MachineFactory = (options: { readonly workDir: string }) => Promise<MachineUnderTest>;

/** Pids of live (non-zombie) processes tagged with this execution id (Linux /proc). */
export function processesOf(execId: string): number[] {
  const tag = `TETHER_EXEC_ID=${execId}`;
  return liveProcesses((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(tag));
}

/**
 * Pids of live (non-zombie) processes for which `matches` holds (Linux /proc). A process that is
 * gone while it is looked at, or whose files are not ours to read (`matches` throws), is left out.
 */
export function liveProcesses(matches: (pid: number) => boolean): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.charAt(stat.lastIndexOf(')') + 2) === 'Z') continue;
      if (matches(Number(name))) pids.push(Number(name));
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  return pids;
}

const codeOf = (error: unknown) => (isTetherError(error) ? error.code : `not a TetherError: ${String(error)}`);
async function failure(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => codeOf(error),
  );
}

/**
 * The machine contract: what every MachineApi does, local or remote. Run it against a factory:
 *
 * ```ts
 * machineContract('LocalMachine', async ({ workDir }) => { ... return { machine, close } });
 * ```
 */
/** What a machine's default backend cannot do, so the suite skips those cases (a batch system has no stdin or terminal). */
export interface MachineContractOptions {
  readonly unsupported?: readonly ('stdin' | 'tty')[];
}

export function machineContract(name: string, factory: MachineFactory, workDirRoot: () => Promise<string>, options: MachineContractOptions = {}): void {
  const lacks = (what: 'stdin' | 'tty') => options.unsupported?.includes(what) ?? false;
  describe(`machine contract: ${name}`, () => {
    let subject: MachineUnderTest;
    let machine: MachineApi;
    let workDir: string;
    let n = 0;
    const scratch = async () => {
      const dir = join(workDir, `t${n++}`);
      await mkdir(dir);
      return dir;
    };

    beforeAll(async () => {
      workDir = await workDirRoot();
      subject = await factory({ workDir });
      machine = subject.machine;
    });
    afterAll(async () => {
      await subject?.close();
    });

    async function run(spec: ExecStartParams) {
      const started = await machine.exec.start(spec);
      const state = await machine.exec.wait(started.id);
      const events = await lastValueFrom(machine.exec.follow(started.id).pipe(toArray()));
      const output = (stream: string) =>
        Buffer.concat(events.flatMap((e: StoredEvent) => (e.type === 'OutputProduced' && e.data.stream === stream ? [e.data.data] : []))).toString('utf8');
      return { state, events, stdout: output('stdout'), stderr: output('stderr'), pty: output('pty') };
    }

    describe('exec', () => {
      it('runs argv and shell commands and records output, exit code and byte counts', async () => {
        const a = await run({ argv: ['printf', 'out'] });
        expect(a.state).toMatchObject({ status: 'finished', endReason: 'exited', exitCode: 0, bytes: { stdout: 3, stderr: 0 } });
        expect(a.stdout).toBe('out');
        const b = await run({ command: 'echo to-out; echo to-err >&2; exit 7' });
        expect(b.state).toMatchObject({ endReason: 'exited', exitCode: 7 });
        expect(b.stdout).toBe('to-out\n');
        expect(b.stderr).toBe('to-err\n');
        expect(b.events.map((e) => e.seq)).toEqual(b.events.map((_, i) => i + 1));
        // A scheduling backend records ExecutionQueued (its job id, why it waits) before the start.
        const steps = b.events.filter((e) => e.type !== 'ExecutionQueued');
        expect(steps[0]!.type).toBe('ExecutionRequested');
        expect(steps[1]!.type).toBe('ExecutionStarted');
        expect(b.events.at(-1)!.type).toBe('ExecutionExited');
      });

      it('returns output bytes unchanged (NUL, invalid UTF-8)', async () => {
        const r = await run({ command: "printf 'a\\000b\\377\\376c'" });
        const bytes = Buffer.concat(r.events.flatMap((e) => (e.type === 'OutputProduced' ? [e.data.data] : [])));
        expect([...bytes]).toEqual([0x61, 0x00, 0x62, 0xff, 0xfe, 0x63]);
      });

      it('runs in the cwd and environment asked for (merged or exact), with a chosen shell', async () => {
        const dir = await scratch();
        const r = await run({ command: 'pwd; echo "$GREETING-$HOME"', cwd: dir, env: { GREETING: 'hi' } });
        expect(r.stdout).toBe(`${dir}\nhi-${process.env['HOME']}\n`);
        const exact = await run({ argv: ['/usr/bin/env'], env: { ONLY: '1' }, envMode: 'exact' });
        expect(exact.stdout.split('\n').filter((l) => l && !l.startsWith('TETHER_EXEC_ID='))).toEqual(['ONLY=1']);
        const bash = await run({ command: 'echo ${BASH_VERSION:+bash}', shell: 'bash' });
        expect(bash.stdout).toBe('bash\n');
      });

      it('ends as signaled when a signal kills it, and as failed_to_start on spawn errors and a missing cwd', async () => {
        expect((await run({ command: 'kill -KILL $$' })).state).toMatchObject({ endReason: 'signaled', signal: 'SIGKILL', exitCode: null });
        expect((await run({ argv: ['/no/such/program'] })).state).toMatchObject({ endReason: 'failed_to_start', error: { code: 'ENOENT' } });
        const dir = await scratch();
        const script = join(dir, 'not-executable');
        await writeFile(script, '#!/bin/sh\necho hi\n');
        await chmod(script, 0o644);
        expect((await run({ argv: [script] })).state).toMatchObject({ endReason: 'failed_to_start', error: { code: 'EACCES' } });
        expect((await run({ argv: ['true'], cwd: join(dir, 'missing') })).state).toMatchObject({
          endReason: 'failed_to_start',
          error: { code: 'CWD_NOT_FOUND' },
          pid: null,
        });
      });

      it('refuses bad input with INVALID_ARGUMENT and unknown ids with EXEC_NOT_FOUND', async () => {
        expect(await failure(machine.exec.start({ command: 'a', argv: ['b'] }))).toBe('INVALID_ARGUMENT');
        expect(await failure(machine.exec.start({ argv: [] }))).toBe('INVALID_ARGUMENT');
        expect(await failure(machine.exec.start({ command: 'x', id: '../etc' }))).toBe('INVALID_ARGUMENT');
        expect(await failure(machine.exec.get('no-such-exec'))).toBe('EXEC_NOT_FOUND');
        expect(await failure(machine.exec.logs('no-such-exec'))).toBe('EXEC_NOT_FOUND');
        expect(await failure(machine.exec.cancel('no-such-exec'))).toBe('EXEC_NOT_FOUND');
        expect(await failure(lastValueFrom(machine.exec.follow('no-such-exec')))).toBe('EXEC_NOT_FOUND');
      });

      it('starts once when the same id is sent several times, at once and later', async () => {
        const dir = await scratch();
        const marker = join(dir, 'runs');
        const id = `idem-${Date.now()}`;
        const spec = { id, command: `echo $$ >> ${marker}; sleep 0.2` };
        const states = await Promise.all([machine.exec.start(spec), machine.exec.start(spec), machine.exec.start(spec)]);
        expect(new Set(states.map((s) => s.pid)).size).toBe(1);
        await machine.exec.wait(id);
        expect(await machine.exec.start(spec)).toMatchObject({ id, status: 'finished', pid: states[0]!.pid });
        expect((await readFile(marker, 'utf8')).trim().split('\n')).toHaveLength(1);
      });

      it.skipIf(lacks('stdin'))('writes stdin once per writeId, closes it for EOF, and refuses stdin that was not asked for', async () => {
        const cat = await machine.exec.start({ argv: ['cat'], stdin: true });
        expect(await machine.exec.write(cat.id, 'hello ', { writeId: 'w1' })).toEqual({ bytes: 6 });
        expect(await machine.exec.write(cat.id, 'hello ', { writeId: 'w1' })).toEqual({ bytes: 6 });
        await machine.exec.write(cat.id, Uint8Array.of(0x00, 0xff, 0x0a), { writeId: 'w2', eof: true });
        const done = await machine.exec.wait(cat.id);
        expect(done).toMatchObject({ endReason: 'exited', exitCode: 0, stdinBytes: 9, stdinClosed: true, bytes: { stdout: 9 } });
        const sleeper = await machine.exec.start({ argv: ['sleep', '30'] });
        expect(await failure(machine.exec.write(sleeper.id, 'x'))).toBe('STDIN_CLOSED');
        await machine.exec.cancel(sleeper.id, { graceMs: 100 });
        expect(await failure(machine.exec.write(cat.id, 'late'))).toBe('EXEC_FINISHED');
      });

      it('cancels a whole process tree, including a child that ignores TERM and one that left the group', async () => {
        // The subshell says when its trap is set: a TERM before that would end it, and no KILL would be needed.
        const tree = await machine.exec.start({ command: `sleep 100 & (trap '' TERM; echo trapped; sleep 100) & setsid sleep 100 & echo ready; wait` });
        await eventually(async () => (await machine.exec.logs(tree.id)).lines.map((l) => l.line).sort().join(' ') === 'ready trapped');
        await eventually(() => processesOf(tree.id).length >= 4);
        const result = await machine.exec.cancel(tree.id, { graceMs: 300 });
        expect(result.cancelled).toBe(true);
        expect(result.state).toMatchObject({ status: 'finished', endReason: 'cancelled', survivors: [] });
        expect(processesOf(tree.id)).toEqual([]);
        const events = await lastValueFrom(machine.exec.follow(tree.id).pipe(toArray()));
        const signals = events.flatMap((e) => (e.type === 'SignalSent' ? [`${e.data.signal}:${e.data.reason}`] : []));
        expect(signals).toEqual(['SIGTERM:cancel', 'SIGKILL:cancel']);
        expect(await machine.exec.cancel(tree.id)).toMatchObject({ cancelled: false, reason: 'already finished' });
      });

      it('times out with end_reason timed_out, and a user signal ends as signaled', async () => {
        const slow = await run({ argv: ['sleep', '100'], timeoutMs: 200, killGraceMs: 200 });
        expect(slow.state).toMatchObject({ endReason: 'timed_out', signal: 'SIGTERM' });
        const interrupted = await machine.exec.start({ argv: ['sleep', '100'] });
        await machine.exec.signal(interrupted.id, 'INT');
        expect(await machine.exec.wait(interrupted.id)).toMatchObject({ endReason: 'signaled', signal: 'SIGINT' });
        expect(await failure(machine.exec.signal(interrupted.id, 'INT'))).toBe('EXEC_FINISHED');
      });

      it('a timeout beyond 2^31 ms (597h, 25d) does not fire early: the command runs to its end', async () => {
        const [hours, days] = await Promise.all([
          run({ command: 'sleep 0.3; echo ok', timeoutMs: 597 * 3_600_000 }),
          run({ command: 'sleep 0.3; echo ok', timeoutMs: 25 * 86_400_000 }),
        ]);
        for (const r of [hours, days]) {
          expect(r.state).toMatchObject({ endReason: 'exited', exitCode: 0 });
          expect(r.stdout).toBe('ok\n');
          expect(r.events.some((e) => e.type === 'SignalSent')).toBe(false);
        }
      });

      it.skipIf(lacks('tty'))('runs in a terminal of the size asked for, and resizes it', async () => {
        const r = await run({ command: 'stty size; test -t 1 && echo is-a-tty', tty: { cols: 101, rows: 31 } });
        expect(r.state.bytes.stdout).toBe(0);
        expect(r.pty).toContain('31 101');
        expect(r.pty).toContain('is-a-tty');
        const resized = await machine.exec.start({ command: 'read line; stty size', tty: { cols: 80, rows: 24 }, stdin: true });
        await machine.exec.resize(resized.id, 132, 43);
        await machine.exec.write(resized.id, 'go\n');
        await machine.exec.wait(resized.id);
        const { lines } = await machine.exec.logs(resized.id, { streams: ['pty'], tailLines: 5 });
        expect(lines.map((l) => l.line)).toContain('43 132');
        expect(await failure(machine.exec.resize((await run({ argv: ['true'] })).state.id, 10, 10))).toBe('EXEC_FINISHED');
      });

      it('tails logs by lines and bytes, reads pages, and long-polls', async () => {
        const r = await run({ command: 'seq 1 5000; echo oops >&2' });
        const tail = await machine.exec.logs(r.state.id, { tailLines: 3 });
        expect(tail.lines.map((l) => l.line)).toEqual(['4998', '4999', '5000']);
        expect(tail.lastSeq).toBe(r.state.lastSeq);
        const both = await machine.exec.logs(r.state.id, { tailLines: 2, streams: ['stdout', 'stderr'] });
        expect(both.lines.map((l) => `${l.stream}:${l.line}`)).toEqual(['stdout:5000', 'stderr:oops']);
        const bytes = await machine.exec.logs(r.state.id);
        expect(bytes.lines.at(-1)!.line).toBe('5000');
        expect(bytes.lines.map((l) => l.line).join('\n').length).toBeLessThanOrEqual(2000);
        const page = await machine.exec.read(r.state.id, { afterSeq: 1, limit: 2 });
        expect(page.events.map((e) => e.seq)).toEqual([2, 3]);
        expect(page).toMatchObject({ lastSeq: r.state.lastSeq, finished: true });

        const later = await machine.exec.start({ command: 'sleep 0.3; echo late' });
        const polled = await machine.exec.read(later.id, { afterSeq: 2, waitMs: 10_000 });
        expect(polled.events[0]!.seq).toBe(3);
      });

      it('a capped time range keeps its newest lines; beforeSeq pins a tail to an earlier end', async () => {
        const r = await run({ command: 'seq 1 3000' });
        const since = await machine.exec.logs(r.state.id, { since: 0, maxLines: 10 });
        expect(since.lines.map((l) => l.line)).toEqual(Array.from({ length: 10 }, (_, i) => String(2991 + i)));
        const two = await run({ command: 'echo first; sleep 0.2; echo second' });
        const all = await machine.exec.logs(two.state.id, { tailLines: 1 });
        expect(all.lines.map((l) => l.line)).toEqual(['second']);
        const firstSeq = (await machine.exec.logs(two.state.id, { tailLines: 2 })).lines[0]!.seq;
        const pinned = await machine.exec.logs(two.state.id, { tailLines: 1, beforeSeq: firstSeq + 1 });
        expect(pinned.lines.map((l) => l.line)).toEqual(['first']);
      });

      it('follows from any seq while the execution runs, with no gap and no duplicate', async () => {
        const live = await machine.exec.start({ command: 'for i in $(seq 1 200); do echo line $i; done; sleep 0.1; echo end' });
        const [fromStart, fromMiddle] = await Promise.all([
          lastValueFrom(machine.exec.follow(live.id).pipe(toArray())),
          lastValueFrom(machine.exec.follow(live.id, 2).pipe(toArray())),
        ]);
        const final = await machine.exec.get(live.id);
        expect(fromStart.map((e) => e.seq)).toEqual(Array.from({ length: final.lastSeq }, (_, i) => i + 1));
        expect(fromMiddle.map((e) => e.seq)).toEqual(Array.from({ length: final.lastSeq - 2 }, (_, i) => i + 3));
      });

      it('runs 20 executions at once, each with its own output, and lists them', async () => {
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => run({ command: `for j in 1 2 3; do echo ${i}-$j; done` })));
        results.forEach((r, i) => expect(r.stdout).toBe(`${i}-1\n${i}-2\n${i}-3\n`));
        const finished = await machine.exec.list({ status: 'finished', limit: 1000 });
        const ids = new Set(finished.items.map((s) => s.id));
        for (const r of results) expect(ids.has(r.state.id)).toBe(true);
      });
    });

    describe('fs', () => {
      it('writes atomically, reads ranges, stats, lists, moves and removes', async () => {
        const dir = await scratch();
        const file = join(dir, 'sub', 'a.bin');
        const data = Uint8Array.from({ length: 1000 }, (_, i) => i % 256);
        expect(await machine.fs.write(file, data, { mkdir: true, mode: 0o600 })).toEqual({ bytesWritten: 1000 });
        const stat = await machine.fs.stat(file);
        expect(stat).toMatchObject({ type: 'file', size: 1000, mode: 0o600 });
        const part = await machine.fs.read(file, { offset: 10, length: 5 });
        expect([...part.data]).toEqual([10, 11, 12, 13, 14]);
        expect(part).toMatchObject({ size: 1000, eof: false });
        expect((await machine.fs.list(join(dir, 'sub'))).map((e) => e.name)).toEqual(['a.bin']);
        await machine.fs.move(file, join(dir, 'b.bin'));
        expect(await failure(machine.fs.stat(file))).toBe('PATH_NOT_FOUND');
        await machine.fs.mkdir(join(dir, 'x', 'y'), { recursive: true });
        expect(await failure(machine.fs.remove(join(dir, 'x')))).toBe('DIRECTORY_NOT_EMPTY');
        await machine.fs.remove(join(dir, 'x'), { recursive: true });
        expect((await machine.fs.list(dir)).map((e) => e.name).sort()).toEqual(['b.bin', 'sub']);
        // A string is written as UTF-8, as exec.write takes one.
        expect(await machine.fs.write(join(dir, 'note.txt'), 'héllo\n')).toEqual({ bytesWritten: 7 });
        expect(new TextDecoder().decode((await machine.fs.read(join(dir, 'note.txt'))).data)).toBe('héllo\n');
      });

      it('uploads in chunks, atomically, and accepts a repeated chunk once', async () => {
        const dir = await scratch();
        const target = join(dir, 'big.bin');
        const chunks = Array.from({ length: 4 }, (_, i) => new Uint8Array(64 * 1024).fill(i + 1));
        const { uploadId } = await machine.fs.beginWrite(target);
        let offset = 0;
        for (const chunk of chunks) {
          await machine.fs.writeChunk(uploadId, offset, chunk);
          if (offset === 0) await machine.fs.writeChunk(uploadId, 0, chunk); // a retry
          offset += chunk.byteLength;
        }
        expect(await failure(machine.fs.stat(target))).toBe('PATH_NOT_FOUND');
        expect(await machine.fs.commitWrite(uploadId)).toEqual({ bytesWritten: offset });
        const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
        expect(sha(new Uint8Array(await readFile(target)))).toBe(sha(Buffer.concat(chunks)));
      });

      it('refuses paths outside its roots', async () => {
        expect(await failure(machine.fs.read('/etc/passwd'))).toBe('PATH_OUTSIDE_ROOT');
        expect(await failure(machine.fs.write(join(workDir, '..', 'escape'), new Uint8Array(1)))).toBe('PATH_OUTSIDE_ROOT');
      });
    });

    describe('machine', () => {
      it('describes itself and reports health', async () => {
        const info = await machine.info();
        expect(info).toMatchObject({ os: process.platform, backends: { process: true, filesystem: true } });
        expect(typeof info.version).toBe('string');
        expect((await machine.health()).ok).toBe(true);
      });

      it('answers a GPU probe without throwing, even with no GPU', async () => {
        const probe = await machine.gpu.probe().catch((error: unknown) => codeOf(error));
        if (typeof probe === 'string') expect(probe).toBe('BACKEND_UNAVAILABLE');
        else expect(typeof probe.available).toBe('boolean');
      });
    });
  });
}
