import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  TetherError,
  normalizeSignal,
  withUserUmask,
  type OutputChunk,
  type ProcessBackend,
  type ProcessExit,
  type ProcessSpec,
  type ReattachRequest,
  type ReattachResult,
  type RunningProcess,
} from '@tether/core';
import { Observable, type Subscriber } from 'rxjs';
import type { ChildProcessBackend } from '../childProcessBackend.js';
import { findSurvivors, signalGroup, signalPids } from '../processTree.js';
import { isSameProcess, paths, readRecord, type ExitInfo, type SupervisorRecord } from './records.js';
import { FrameBuffers, encodeFrame, type Frame } from './wire.js';

/** The built supervisor program, `dist/supervisor/main.js`. */
export const SUPERVISOR_MAIN = fileURLToPath(import.meta.resolve('@tether/plugin-process/supervisorMain'));

const START_TIMEOUT_MS = 15_000;
const HELLO_TIMEOUT_MS = 5000;
/** How long closing the backend waits for the pool's supervisors to leave. */
const CLOSE_WAIT_MS = 5000;
/** An ack goes once this much more output is recorded (the supervisor's window is 8 MiB)… */
const ACK_BYTES = 2 * 1024 * 1024;
/** …or this long after the output it acknowledges was recorded. */
const ACK_DELAY_MS = 20;

export interface SupervisorOptions {
  /** Where supervisors keep their sockets, records and spools (created 0700). */
  readonly dir: string;
  /** Most output bytes a supervisor spools while no daemon is attached; beyond, it drops and says so. */
  readonly spoolLimitBytes: number;
  /** Supervisors kept started and idle, so that a spawn does not wait for one to start. */
  readonly warm: number;
  readonly drainTimeoutMs: number;
}

/** One connection to a supervisor: frames in, frames out. */
class Link {
  readonly socket: Socket;
  /** Frames that came while nobody handled them (between a reply and the handler taking over). */
  readonly #queue: Frame[] = [];
  #handler: ((frame: Frame) => void) | undefined;
  #waiter: ((frame: Frame) => boolean) | undefined;
  readonly closed: Promise<void>;
  /** The supervisor that answered our hello: pid and start time. */
  #peer: { readonly pid: number; readonly startTime: string | null } | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  #dispatch(frame: Frame): void {
    const h = frame.header;
    if (h.t === 'hello' && typeof h['pid'] === 'number') this.#peer = { pid: h['pid'], startTime: typeof h['startTime'] === 'string' ? h['startTime'] : null };
    if (this.#waiter?.(frame)) return;
    if (this.#handler) this.#handler(frame);
    else this.#queue.push(frame);
  }

  /** Frames are queued again until the next `handle` (a supervisor between two executions). */
  unhandle(): void {
    this.#handler = undefined;
  }

  /** Hands every frame (those queued first) to `handler` from now on. */
  handle(handler: (frame: Frame) => void): void {
    this.#handler = handler;
    for (const frame of this.#queue.splice(0)) handler(frame);
  }

  static open(path: string): Promise<Link> {
    return new Promise((resolve, reject) => {
      // Frames are read straight into buffers of their own (see FrameBuffers).
      const reader = new FrameBuffers();
      let link: Link | undefined;
      const socket = connect({
        path,
        onread: {
          buffer: () => reader.buffer(),
          callback: (bytes: number) => {
            let frame: Frame | null;
            try {
              frame = reader.read(bytes);
            } catch {
              socket.destroy();
              return false;
            }
            if (frame) link!.#dispatch(frame);
            return true;
          },
        },
      });
      link = new Link(socket);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(link);
      });
      socket.once('error', reject);
    });
  }

  send(header: { readonly t: string } & Record<string, unknown>, payload?: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(header, payload));
  }

  /** The next frame of one of `types`; rejects if the link closes or `timeoutMs` passes first. */
  next(types: readonly string[], timeoutMs: number): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ${types.join('/')} from the supervisor within ${timeoutMs} ms`)), timeoutMs);
      const done = (error: Error | null, frame?: Frame) => {
        clearTimeout(timer);
        this.#waiter = undefined;
        this.socket.off('close', onClose);
        if (error) reject(error);
        else resolve(frame!);
      };
      const onClose = () => done(new Error('the supervisor closed the connection'));
      this.socket.once('close', onClose);
      this.#waiter = (frame) => {
        if (!types.includes(frame.header.t)) return false;
        done(null, frame);
        return true;
      };
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /**
   * Closes the link and waits (up to `timeoutMs`) until the supervisor that answered it has left:
   * an idle one leaves when its link ends.
   */
  async closeAndAwaitExit(timeoutMs: number): Promise<void> {
    this.close();
    const peer = this.#peer;
    if (!peer) return;
    const deadline = Date.now() + timeoutMs;
    while (isSameProcess(peer.pid, peer.startTime) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The process backend with a supervisor per execution (see `supervisor/main.ts`): spawns go
 * through a small process that outlives the daemon, and a daemon that starts again re-attaches
 * to the supervisors of the executions it finds running.
 */
export class SupervisedProcessBackend implements ProcessBackend {
  readonly #base: ChildProcessBackend;
  readonly #options: SupervisorOptions;
  /** Supervisors started and idle (LIFO), and ones being started (nobody has claimed them yet). */
  readonly #idle: Link[] = [];
  readonly #starting: Array<{ claimed: boolean; readonly link: Promise<Link> }> = [];
  /** Idle supervisors told to leave, until they have. */
  readonly #leaving = new Set<Promise<void>>();
  #log: number | undefined;
  #closed = false;

  constructor(base: ChildProcessBackend, options: SupervisorOptions) {
    this.#base = base;
    this.#options = options;
    // The first spawn should not wait for a Node start: begin while the daemon opens its store.
    this.#refill();
  }

  async spawn(spec: ProcessSpec): Promise<RunningProcess> {
    if (this.#closed) throw new TetherError('BACKEND_UNAVAILABLE', 'the process backend is closed', { backend: 'process' });
    const prepared = await this.#base.prepare(spec);
    const link = await this.#take();
    link.send({
      t: 'spawn',
      execId: prepared.id,
      argv: prepared.argv,
      cwd: prepared.cwd,
      env: prepared.env,
      tty: prepared.tty,
      stdin: prepared.stdin,
      timeoutMs: spec.timeoutMs,
      killGraceMs: spec.killGraceMs,
      spoolLimitBytes: this.#options.spoolLimitBytes,
      drainTimeoutMs: this.#options.drainTimeoutMs,
    });
    let reply: Frame;
    try {
      reply = await link.next(['spawned', 'spawnFailed'], START_TIMEOUT_MS);
    } catch (cause) {
      link.close();
      throw new TetherError('SPAWN_FAILED', `the supervisor did not start the command: ${(cause as Error).message}`, {}, { cause });
    }
    const h = reply.header;
    if (h.t === 'spawnFailed') {
      link.close();
      const errno = typeof h['errno'] === 'string' ? h['errno'] : undefined;
      const code = h['code'] === 'CWD_NOT_FOUND' || h['code'] === 'BACKEND_UNAVAILABLE' ? h['code'] : 'SPAWN_FAILED';
      throw new TetherError(code, `spawn failed: ${String(h['message'])}`, errno ? { errno } : {});
    }
    const record = readRecord(paths(this.#options.dir, prepared.id).record);
    return new SupervisedProcess(link, {
      reuse: (idle) => this.#giveBack(idle),
      execId: prepared.id,
      pid: Number(h['pid']),
      record,
      resumeFrom: 0,
      socketPath: paths(this.#options.dir, prepared.id).socket,
      dir: this.#options.dir,
    });
  }

  async reattach(requests: readonly ReattachRequest[]): Promise<Map<string, ReattachResult>> {
    const dir = this.#ensureDir();
    const results = new Map<string, ReattachResult>();
    const wanted = new Set(requests.map((r) => r.id));
    await Promise.all(
      requests.map(async (request) => {
        results.set(request.id, await this.#reattachOne(dir, request));
      }),
    );
    // Supervisors (or their commands) of executions that are not running any more: end them.
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.json')) continue;
      const record = readRecord(join(dir, name));
      if (!record || wanted.has(record.execId)) continue;
      await releaseOrphan(dir, record);
    }
    this.#refill();
    return results;
  }

  async #reattachOne(dir: string, request: ReattachRequest): Promise<ReattachResult> {
    const files = paths(dir, request.id);
    let record = readRecord(files.record);
    if (!record) return { lost: 'its supervisor left no record (the machine restarted, or the state directory was cleared)' };
    // The previous daemon died while the supervisor was starting the command: let it finish.
    for (let i = 0; i < 250 && !record.child && isSameProcess(record.supervisor.pid, record.supervisor.startTime); i++) {
      await new Promise((r) => setTimeout(r, 20));
      record = readRecord(files.record) ?? record;
    }
    if (!record.child) {
      await killRecordedCommand(record);
      removeFiles(files);
      return { lost: `its supervisor (pid ${record.supervisor.pid}) did not start the command` };
    }
    if (request.pid !== null && record.child.pid !== request.pid) {
      await killRecordedCommand(record);
      removeFiles(files);
      return { lost: `its supervisor's record names pid ${record.child.pid}, not ${request.pid}` };
    }
    if (!isSameProcess(record.supervisor.pid, record.supervisor.startTime)) {
      const killed = await killRecordedCommand(record);
      removeFiles(files);
      return { lost: `its supervisor (pid ${record.supervisor.pid}) is gone${killed ? '; what was left of the command was killed' : ''}` };
    }
    let link: Link | undefined;
    try {
      link = await Link.open(files.socket);
      link.send({ t: 'hello', execId: request.id, resumeFrom: request.outputOffset });
      const hello = await link.next(['hello', 'refused'], HELLO_TIMEOUT_MS);
      const h = hello.header;
      if (h.t !== 'hello' || h['execId'] !== request.id || h['pid'] !== record.supervisor.pid || h['startTime'] !== record.supervisor.startTime) {
        throw new Error(`the process on ${files.socket} is not the supervisor of ${request.id}`);
      }
      const child = record.child;
      return {
        process: new SupervisedProcess(link, {
          reuse: (idle) => this.#giveBack(idle),
          execId: request.id,
          pid: child.pid,
          record,
          resumeFrom: request.outputOffset,
          socketPath: files.socket,
          dir,
        }),
      };
    } catch (error) {
      link?.close();
      return { lost: `its supervisor (pid ${record.supervisor.pid}) did not answer: ${(error as Error).message}` };
    }
  }

  /**
   * Sends the pool's supervisors away and waits (a bounded time) until they have left, so that
   * nothing of this backend writes in its directory afterwards. Supervisors running executions
   * stay: they outlive the daemon.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const link of this.#idle.splice(0)) this.#retire(link);
    // One still starting is retired by `#refill`'s handler once it is up (`#keep` when closed).
    const starting = this.#starting.splice(0).map((entry) => entry.link.catch(() => undefined));
    const left = (async () => {
      await Promise.all(starting);
      await Promise.all(this.#leaving);
    })();
    await Promise.race([left, new Promise((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
    if (this.#log !== undefined) closeSync(this.#log);
    this.#log = undefined;
  }

  #retire(link: Link): void {
    const gone: Promise<void> = link.closeAndAwaitExit(CLOSE_WAIT_MS).finally(() => this.#leaving.delete(gone));
    this.#leaving.add(gone);
  }

  #ensureDir(): string {
    mkdirSync(this.#options.dir, { recursive: true, mode: 0o700 });
    return this.#options.dir;
  }

  /** An idle supervisor: one kept, else the one starting soonest, else a new one. */
  async #take(): Promise<Link> {
    let link: Link | undefined;
    while (!link) {
      const idle = this.#idle.pop();
      if (idle) {
        if (!idle.socket.destroyed) link = idle;
        continue;
      }
      const starting = this.#starting.shift();
      if (!starting) break;
      starting.claimed = true;
      const started = await starting.link.catch(() => undefined);
      if (started && !started.socket.destroyed) link = started;
    }
    link ??= await this.#launch();
    link.socket.ref();
    this.#refill();
    return link;
  }

  #refill(): void {
    while (!this.#closed && this.#idle.length + this.#starting.length < this.#options.warm) {
      const entry = { claimed: false, link: this.#launch() };
      this.#starting.push(entry);
      entry.link.then(
        (link) => {
          const at = this.#starting.indexOf(entry);
          if (at !== -1) this.#starting.splice(at, 1);
          if (!entry.claimed) this.#keep(link);
        },
        () => {
          const at = this.#starting.indexOf(entry);
          if (at !== -1) this.#starting.splice(at, 1);
        },
      );
    }
  }

  /** A supervisor whose execution is recorded and which is idle again. */
  #giveBack(link: Link): void {
    // A few more than `warm` are kept: a burst of short executions then needs no new ones.
    if (!this.#closed && this.#idle.length < this.#options.warm + 2) this.#keep(link);
    else this.#retire(link);
  }

  #keep(link: Link): void {
    if (this.#closed || link.socket.destroyed) return this.#retire(link);
    // Idle, a supervisor does not keep this process alive; its connection's end makes it leave.
    link.unhandle();
    link.socket.unref();
    this.#idle.push(link);
  }

  /** Starts a supervisor in a session of its own and greets it. */
  async #launch(): Promise<Link> {
    const dir = this.#ensureDir();
    this.#log ??= openSync(join(dir, 'supervisors.log'), 'a', 0o600);
    // It starts with the user's umask (not the daemon's 077) and passes it on to the command.
    const child = withUserUmask(() =>
      spawn(process.execPath, [SUPERVISOR_MAIN, '--dir', dir, '--id', randomBytes(8).toString('hex')], {
        detached: true,
        stdio: ['pipe', 'pipe', this.#log!],
      }),
    );
    const ready = await readyLine(child);
    // Its stdin stays open: its end tells an idle supervisor that we are gone.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    const link = await Link.open(ready.socket);
    link.socket.unref();
    link.send({ t: 'hello' });
    await link.next(['hello'], HELLO_TIMEOUT_MS);
    return link;
  }
}

function readyLine(child: ChildProcess): Promise<{ pid: number; socket: string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(new Error('the supervisor did not start in time')), START_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new TetherError('SPAWN_FAILED', `the execution's supervisor could not be started: ${error.message}`));
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`it exited with ${code}`)));
    child.stdout!.on('data', (data: Buffer) => {
      text += data.toString('utf8');
      const end = text.indexOf('\n');
      if (end === -1) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      child.on('error', () => undefined);
      child.stdout!.destroy();
      try {
        resolve(JSON.parse(text.slice(0, end)) as { pid: number; socket: string });
      } catch (error) {
        fail(error as Error);
      }
    });
  });
}

/** Kills what is left of a recorded command whose supervisor is gone. True if something was. */
async function killRecordedCommand(record: SupervisorRecord): Promise<boolean> {
  const pid = record.child?.pid ?? null;
  let killed = false;
  if (pid !== null && !record.exit && isSameProcess(pid, record.child!.startTime)) {
    try {
      signalGroup(pid, 'SIGKILL');
      killed = true;
    } catch {
      // gone meanwhile
    }
  }
  for (let i = 0; i < 40; i++) {
    const left = await findSurvivors(pid, record.execId).catch(() => []);
    if (left.length === 0) break;
    killed = true;
    try {
      signalPids(left, 'SIGKILL');
    } catch {
      // not ours
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return killed;
}

async function releaseOrphan(dir: string, record: SupervisorRecord): Promise<void> {
  const files = paths(dir, record.execId);
  if (isSameProcess(record.supervisor.pid, record.supervisor.startTime)) {
    try {
      const link = await Link.open(files.socket);
      link.send({ t: 'hello', execId: record.execId });
      const hello = await link.next(['hello', 'refused'], HELLO_TIMEOUT_MS);
      if (hello.header.t === 'hello' && hello.header['pid'] === record.supervisor.pid) {
        link.send({ t: 'release' });
        await Promise.race([link.closed, new Promise((r) => setTimeout(r, HELLO_TIMEOUT_MS))]);
      }
      link.close();
      return;
    } catch {
      // not answering: treat it as gone
    }
  }
  await killRecordedCommand(record);
  removeFiles(files);
}

function removeFiles(files: ReturnType<typeof paths>): void {
  for (const path of [files.record, files.spool, files.socket]) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

interface SupervisedOptions {
  /** Takes the supervisor back once it is idle again (after `release`). */
  readonly reuse: (link: Link) => void;
  readonly execId: string;
  readonly pid: number;
  readonly record: SupervisorRecord | undefined;
  /** Output offset the daemon has recorded up to. */
  readonly resumeFrom: number;
  readonly socketPath: string;
  readonly dir: string;
}

/** A command run by a supervisor, seen from the daemon. */
class SupervisedProcess implements RunningProcess {
  readonly pid: number;
  readonly pgid: number;
  readonly output$: Observable<OutputChunk>;
  readonly exit: Promise<ProcessExit>;
  readonly enforcesTimeout = true;
  readonly #options: SupervisedOptions;
  /** Chunks that arrived while nobody was subscribed (the supervisor's window bounds them). */
  #queue: OutputChunk[] = [];
  #subscriber: Subscriber<OutputChunk> | null = null;
  readonly #ends = new WeakMap<OutputChunk, number>();
  readonly #replies = new Map<number, { resolve: (h: Frame['header']) => void; reject: (e: Error) => void }>();
  #link: Link;
  #resolveExit!: (exit: ProcessExit) => void;
  #nextOff: number;
  /** Output recorded up to here; the supervisor was told `#ackSent`. */
  #ackOff = 0;
  #ackSent = 0;
  #ackScheduled = false;
  #ackTimer: NodeJS.Timeout | undefined;
  #reqId = 0;
  #detaching = false;
  #ended = false;
  #paused = false;

  constructor(link: Link, options: SupervisedOptions) {
    this.#link = link;
    this.#options = options;
    this.pid = options.pid;
    this.pgid = options.pid;
    this.#nextOff = options.resumeFrom;
    this.#ackOff = options.resumeFrom;
    this.#ackSent = options.resumeFrom;
    this.exit = new Promise((resolve) => (this.#resolveExit = resolve));
    // One subscriber at a time (the machine recording the output); it gets what came before it.
    this.output$ = new Observable<OutputChunk>((subscriber) => {
      this.#subscriber = subscriber;
      for (const chunk of this.#queue.splice(0)) subscriber.next(chunk);
      if (this.#ended) subscriber.complete();
      return () => {
        if (this.#subscriber === subscriber) this.#subscriber = null;
      };
    });
    this.#bind(link);
  }

  #bind(link: Link): void {
    link.handle((frame) => this.#onFrame(frame));
    void link.closed.then(() => this.#onClose(link));
    if (this.#paused) link.socket.pause();
  }

  #onFrame(frame: Frame): void {
    const h = frame.header;
    switch (h.t) {
      case 'out': {
        const off = Number(h['off']);
        let data = frame.payload;
        const end = off + data.byteLength;
        if (end <= this.#nextOff) return; // sent again after a re-attach: recorded already
        if (off < this.#nextOff) data = data.subarray(this.#nextOff - off);
        this.#nextOff = end;
        const stream = h['s'] === 'stderr' ? 'stderr' : h['s'] === 'pty' ? 'pty' : 'stdout';
        const chunk: OutputChunk = { stream, data };
        this.#ends.set(chunk, end);
        this.#emit(chunk);
        return;
      }
      case 'dropped': {
        const off = Number(h['off']);
        const end = off + Number(h['bytes']);
        if (end <= this.#nextOff) return;
        const bytes = end - Math.max(off, this.#nextOff);
        this.#nextOff = end;
        const chunk: OutputChunk = { stream: 'stdout', data: new Uint8Array(0), dropped: { bytes, limitBytes: Number(h['limitBytes']) } };
        this.#ends.set(chunk, end);
        this.#emit(chunk);
        return;
      }
      case 'exit': {
        const info = h as unknown as ExitInfo;
        this.#end({ exitCode: info.exitCode, signal: info.signal, survivors: info.survivors, endedAt: info.endedAt, ...(info.stops[0] ? { stopReason: info.stops[0].reason } : {}) });
        return;
      }
      case 'reply': {
        const pending = this.#replies.get(Number(h['reqId']));
        this.#replies.delete(Number(h['reqId']));
        pending?.resolve(h);
        return;
      }
      default:
        return;
    }
  }

  #end(exit: ProcessExit): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#resolveExit(exit);
    this.#subscriber?.complete();
  }

  #emit(chunk: OutputChunk): void {
    if (this.#subscriber) this.#subscriber.next(chunk);
    else this.#queue.push(chunk);
  }

  async #onClose(link: Link): Promise<void> {
    if (link !== this.#link) return;
    for (const pending of this.#replies.values()) pending.reject(new TetherError('STDIN_CLOSED', "the execution's supervisor went away during the write"));
    this.#replies.clear();
    if (this.#detaching || this.#ended) return;
    const record = readRecord(paths(this.#options.dir, this.#options.execId).record) ?? this.#options.record;
    // The supervisor may still be there (a newer daemon took over, or a hiccup): try once more.
    if (record && isSameProcess(record.supervisor.pid, record.supervisor.startTime)) {
      try {
        const again = await Link.open(this.#options.socketPath);
        // From what is recorded, not what arrived: the supervisor forgets what it is told was
        // taken, and what arrived but is not in the store yet must outlive this daemon too.
        // What comes again is skipped by offset (`#nextOff`).
        again.send({ t: 'hello', execId: this.#options.execId, resumeFrom: this.#ackOff });
        const hello = await again.next(['hello', 'refused'], HELLO_TIMEOUT_MS);
        if (hello.header.t === 'hello' && hello.header['pid'] === record.supervisor.pid) {
          this.#link = again;
          this.#bind(again);
          return;
        }
        again.close();
      } catch {
        // it is going or gone
      }
    }
    const pid = record?.supervisor.pid;
    const killed = record ? await killRecordedCommand(record) : false;
    removeFiles(paths(this.#options.dir, this.#options.execId));
    this.#end({
      exitCode: null,
      signal: null,
      lost: `its supervisor${pid ? ` (pid ${pid})` : ''} died${killed ? '; what was left of the command was killed' : ''}`,
    });
  }

  pauseOutput(): void {
    this.#paused = true;
    this.#link.socket.pause();
  }

  resumeOutput(): void {
    this.#paused = false;
    this.#link.socket.resume();
  }

  outputRecorded(chunk: OutputChunk): void {
    const end = this.#ends.get(chunk);
    if (end === undefined || end <= this.#ackOff) return;
    this.#ackOff = end;
    // Each ack wakes the supervisor up: under a flood one goes per ACK_BYTES recorded (a quarter
    // of its window, so that it never waits for one), and what is left goes after ACK_DELAY_MS.
    if (this.#ackOff - this.#ackSent >= ACK_BYTES) {
      if (this.#ackScheduled) return;
      this.#ackScheduled = true;
      setImmediate(() => this.#sendAck());
    } else {
      this.#ackTimer ??= setTimeout(() => this.#sendAck(), ACK_DELAY_MS).unref();
    }
  }

  #sendAck(): void {
    this.#ackScheduled = false;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    // Never after `release`/`detach`: a supervisor given back to the pool may run another
    // execution by the time a late ack would come, and must not take it for its own.
    if (this.#detaching || this.#ackOff <= this.#ackSent) return;
    this.#ackSent = this.#ackOff;
    this.#link.send({ t: 'ack', offset: this.#ackOff });
  }

  async write(data: Uint8Array, options: { readonly writeId?: string } = {}): Promise<{ duplicate: boolean }> {
    if (!(data instanceof Uint8Array)) throw new TetherError('INVALID_ARGUMENT', 'write data must be a Uint8Array');
    const reply = await this.#request({ t: 'write', writeId: options.writeId }, data);
    return { duplicate: reply['duplicate'] === true };
  }

  async closeStdin(): Promise<void> {
    // A process that has ended has no stdin left to close (as with a direct child).
    if (this.#ended) return;
    await this.#request({ t: 'write', eof: true }).catch((error: unknown) => {
      if (!this.#ended) throw error;
    });
  }

  async #request(header: { readonly t: string } & Record<string, unknown>, payload?: Uint8Array): Promise<Frame['header']> {
    if (this.#ended) throw new TetherError('STDIN_CLOSED', 'the process has ended');
    const reqId = ++this.#reqId;
    const reply = await new Promise<Frame['header']>((resolve, reject) => {
      this.#replies.set(reqId, { resolve, reject });
      this.#link.send({ ...header, reqId }, payload);
    });
    const error = reply['error'] as { code?: string; message?: string } | undefined;
    if (error) throw new TetherError(error.code === 'INVALID_ARGUMENT' ? 'INVALID_ARGUMENT' : 'STDIN_CLOSED', error.message ?? 'the write failed');
    return reply;
  }

  signal(signal: string): void {
    this.#link.send({ t: 'signal', signal: normalizeSignal(signal) });
  }

  resize(cols: number, rows: number): void {
    this.#link.send({ t: 'resize', cols, rows });
  }

  survivors(): Promise<number[]> {
    return findSurvivors(this.pgid, this.#options.execId);
  }

  signalPids(pids: readonly number[], signal: string): void {
    signalPids(pids, signal);
  }

  release(): void {
    this.#detaching = true;
    clearTimeout(this.#ackTimer);
    const link = this.#link;
    link.socket.resume();
    link.send({ t: 'release', reuse: true });
    link.next(['idle'], HELLO_TIMEOUT_MS).then(
      () => this.#options.reuse(link),
      () => link.close(),
    );
  }

  async detach(): Promise<void> {
    this.#detaching = true;
    this.#link.socket.end();
    await Promise.race([this.#link.closed, new Promise((r) => setTimeout(r, 1000).unref())]);
    this.#link.close();
  }
}
