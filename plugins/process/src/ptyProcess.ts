import { readFileSync, readSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import { TetherError, type OutputChunk, type ProcessExit, type RunningProcess } from '@tether/core';
import type { IPty } from './nodePty.js';
import type { Observable } from 'rxjs';
import { OutputPump } from './outputPump.js';
import { findSurvivors, signalGroup, signalPids } from './processTree.js';

/** The terminal's end-of-file character (VEOF, ^D), as node-pty sets up the terminal. */
const EOF_CHARACTER = Buffer.from([4]);
const READ_SIZE = 64 * 1024;
const READ_REST_LIMIT = 16 * 1024 * 1024;
/** How long to wait before retrying a write the full terminal refused (EAGAIN). */
const WRITE_RETRY_MS = 10;

interface PendingWrite {
  data: Buffer;
  readonly resolve: () => void;
  readonly reject: (error: TetherError) => void;
}

/** The parts of node-pty's UnixTerminal (1.x) that its typings do not declare. */
interface UnixTerminalInternals {
  readonly fd?: number;
  readonly _socket?: Readable;
}

/**
 * A process in a pseudo-terminal (node-pty, binary mode). The child is a session leader, so its
 * pid is its process group. Output arrives on the `pty` stream as raw bytes.
 *
 * Three node-pty behaviours are worked around, all seen on Linux 6.x with node-pty 1.1:
 * - the master can read as end-of-file while the terminal still holds output (right when the
 *   child exits), so the tail was lost in about a third of runs; on that early end the rest is
 *   read from the master fd synchronously until the kernel says EIO (nothing left);
 * - node-pty destroys the master 200 ms after the child exits even if reading is paused, which
 *   lost everything unread; before that destroy the unread output is read into memory (bounded:
 *   after the session leader exits nobody can write to the terminal any more);
 * - node-pty closes the master as soon as reading fails with EIO, i.e. when the leader closed
 *   its terminal fds, even if it has not exited yet; the hang-up then killed it with SIGHUP
 *   (`cat` reading ^D: a third of runs reported SIGHUP instead of exit 0). The close is held
 *   back until the leader has exited.
 * Input is written to the master fd here rather than through node-pty's queue, whose writes
 * run in the thread pool and could land after the fd was closed (EBADF, or a reused fd number).
 * The workarounds use node-pty's private `_socket` and `fd`; if those change shape they are
 * skipped and node-pty's plain behaviour remains.
 */
export class PtyProcess implements RunningProcess {
  readonly pid: number;
  readonly pgid: number;
  readonly output$: Observable<OutputChunk>;
  readonly exit: Promise<ProcessExit>;
  readonly #id: string;
  readonly #term: IPty;
  readonly #pump: OutputPump;
  readonly #fd: number | undefined;
  #stdinOpen: boolean;
  /** The master fd is closed (or about to be): never touch it again. */
  #closed = false;
  /** node-pty reported the exit (the leader was reaped). */
  #exited = false;
  #deferredDestroy: (() => void) | undefined;
  #startTime: string | undefined;
  readonly #writes: PendingWrite[] = [];
  #writeRetry: NodeJS.Timeout | undefined;

  constructor(term: IPty, options: { readonly id: string; readonly stdin: boolean }) {
    this.#term = term;
    this.#id = options.id;
    this.pid = term.pid;
    this.pgid = term.pid;
    this.#stdinOpen = options.stdin;
    this.#pump = new OutputPump((flowing) => (flowing ? term.resume() : term.pause()));
    this.output$ = this.#pump.output$;
    // Nobody is subscribed yet: leave the output in the terminal until someone is.
    term.pause();
    term.onData((data) => this.#pump.push({ stream: 'pty', data: data as unknown as Buffer }));

    const internals = term as unknown as UnixTerminalInternals;
    const socket = internals._socket;
    this.#fd = typeof internals.fd === 'number' && socket && typeof socket.destroy === 'function' ? internals.fd : undefined;
    if (socket && this.#fd !== undefined) {
      this.#startTime = statOf(this.pid)?.startTime;
      socket.on('end', () => this.#readRest());
      const destroy = socket.destroy.bind(socket);
      socket.destroy = (error?: Error) => {
        if (this.#closed) return destroy(error);
        // Take what the socket buffered while paused (read() hands it to onData), then the fd.
        while (socket.readableLength > 0 && socket.read() !== null);
        this.#readRest();
        if (!this.#exited && this.#leaderAlive()) {
          // Closing the master hangs the terminal up, which would SIGHUP a leader that merely
          // closed its terminal fds and has yet to exit: wait for its exit.
          this.#deferredDestroy = () => socket.destroy(error);
          return socket;
        }
        this.#closed = true;
        this.#flushWrites();
        return destroy(error);
      };
    }

    this.exit = new Promise((resolve) => {
      term.onExit(({ exitCode, signal }) => {
        this.#exited = true;
        this.#deferredDestroy?.();
        this.#deferredDestroy = undefined;
        this.#closed = true;
        this.#stdinOpen = false;
        this.#flushWrites();
        resolve(signal ? { exitCode: null, signal: signalName(signal) } : { exitCode, signal: null });
        this.#pump.end();
      });
    });
    if (!options.stdin) void this.#sendEof();
  }

  pauseOutput(): void {
    this.#pump.pause();
  }

  resumeOutput(): void {
    this.#pump.resume();
  }

  /** Resolves once the terminal took the bytes (a full terminal holds the writer back). */
  write(data: Uint8Array): Promise<void> {
    if (!(data instanceof Uint8Array)) return Promise.reject(new TetherError('INVALID_ARGUMENT', 'write data must be a Uint8Array'));
    if (!this.#stdinOpen) return Promise.reject(stdinClosed());
    return this.#enqueue(Buffer.from(data));
  }

  /** Types the terminal's end-of-file character (^D): a reader in canonical mode sees EOF. */
  async closeStdin(): Promise<void> {
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    await this.#sendEof();
  }

  signal(signal: string): void {
    signalGroup(this.pgid, signal);
  }

  resize(cols: number, rows: number): void {
    if (![cols, rows].every((n) => Number.isInteger(n) && n >= 1 && n <= 10_000)) {
      throw new TetherError('INVALID_ARGUMENT', 'cols and rows must be positive integers');
    }
    // Once closed, the fd number may belong to something else: never ioctl it.
    if (this.#closed) return;
    this.#term.resize(cols, rows);
  }

  survivors(): Promise<number[]> {
    return findSurvivors(this.pgid, this.#id);
  }

  signalPids(pids: readonly number[], signal: string): void {
    signalPids(pids, signal);
  }

  /** The leader is still running (a zombie no longer minds a hang-up), and its pid was not reused. */
  #leaderAlive(): boolean {
    if (this.#startTime === undefined) {
      try {
        process.kill(this.pid, 0);
        return true;
      } catch {
        return false;
      }
    }
    const stat = statOf(this.pid);
    return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' && stat.startTime === this.#startTime;
  }

  #sendEof(): Promise<void> {
    return this.#enqueue(EOF_CHARACTER).catch(() => undefined);
  }

  #enqueue(data: Buffer): Promise<void> {
    if (data.byteLength === 0) return Promise.resolve();
    if (this.#fd === undefined) {
      // node-pty's internals are not as expected: let it queue the bytes itself.
      if (!this.#closed) this.#term.write(data);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.#writes.push({ data, resolve, reject });
      if (this.#writes.length === 1) this.#flushWrites();
    });
  }

  /** Writes queued input synchronously, so that it can never reach the fd after it was closed. */
  #flushWrites(): void {
    if (this.#writeRetry) return;
    while (this.#writes.length > 0) {
      const pending = this.#writes[0]!;
      if (this.#closed || this.#fd === undefined) {
        for (const write of this.#writes.splice(0)) write.reject(stdinClosed());
        return;
      }
      let written: number;
      try {
        written = writeSync(this.#fd, pending.data);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') {
          for (const write of this.#writes.splice(0)) write.reject(stdinClosed(error));
          return;
        }
        written = 0;
      }
      if (written === 0) {
        // The terminal's input buffer is full: the program is not reading. Try again shortly.
        this.#writeRetry = setTimeout(() => {
          this.#writeRetry = undefined;
          this.#flushWrites();
        }, WRITE_RETRY_MS);
        return;
      }
      pending.data = pending.data.subarray(written);
      if (pending.data.byteLength === 0) {
        this.#writes.shift();
        pending.resolve();
      }
    }
  }

  /** Reads the master until the kernel reports EIO (terminal closed, nothing left) or EAGAIN. */
  #readRest(): void {
    if (this.#closed || this.#fd === undefined) return;
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    // A read may return 0 spuriously while the terminal is being hung up; a few retries suffice.
    // The byte limit only guards against a writer that somehow keeps going.
    for (let zeroReads = 0, total = 0; zeroReads < 3 && total < READ_REST_LIMIT; ) {
      let n: number;
      try {
        n = readSync(this.#fd, buffer, 0, READ_SIZE, null);
      } catch {
        return;
      }
      if (n === 0) zeroReads++;
      else this.#pump.push({ stream: 'pty', data: Buffer.from(buffer.subarray(0, n)) });
      total += n;
    }
  }
}

function stdinClosed(cause?: unknown): TetherError {
  return new TetherError('STDIN_CLOSED', cause ? 'the terminal no longer takes input' : 'input to the terminal is not open for this process', {}, { cause });
}

/** Linux: a process's state and start time (which tells a reused pid apart), from /proc. */
function statOf(pid: number): { state: string; startTime: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

function signalName(signal: number): string {
  const names = constants.signals as Record<string, number>;
  return Object.keys(names).find((name) => names[name] === signal) ?? `SIG${signal}`;
}
