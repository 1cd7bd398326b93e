import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { TetherError, type OutputChunk, type ProcessExit, type RunningProcess } from '@tether/core';
import type { Observable } from 'rxjs';
import { OutputPump } from './outputPump.js';
import { findSurvivors, signalGroup, signalPids } from './processTree.js';
import { writeToStdin } from './stdinPipe.js';

interface OutputSource {
  readonly name: 'stdout' | 'stderr';
  readonly stream: Readable;
  ended: boolean;
}

/**
 * A child process with pipes, leader of its own process group (started `detached`).
 *
 * Output is pulled (`readable` + `read()`) only while the pump is flowing, so a paused or
 * unsubscribed output leaves the data in the OS pipe and the writer blocks: memory stays bounded.
 * Pull mode also keeps Node from resuming the streams on its own when the child exits.
 */
export class PipeProcess implements RunningProcess {
  readonly pid: number;
  readonly pgid: number;
  readonly output$: Observable<OutputChunk>;
  readonly exit: Promise<ProcessExit>;
  readonly #id: string;
  readonly #pump: OutputPump;
  readonly #sources: OutputSource[];
  #stdin: Writable | null;
  #exited = false;
  #drainLeftMs: number;
  #drainStartedAt = 0;
  #drainTimer: NodeJS.Timeout | undefined;

  /** `child` must have been spawned (its `spawn` event fired) with stdout and stderr piped. */
  constructor(child: ChildProcess, options: { readonly id: string; readonly stdin: boolean; readonly drainTimeoutMs: number }) {
    if (child.pid === undefined || !child.stdout || !child.stderr) throw new TetherError('INTERNAL', 'the child process has no pid or pipes');
    this.pid = child.pid;
    this.pgid = child.pid;
    this.#id = options.id;
    this.#drainLeftMs = options.drainTimeoutMs;
    this.#stdin = options.stdin ? child.stdin : null;
    // EPIPE once the child stops reading: reported to the pending write, never thrown here.
    child.stdin?.on('error', () => undefined);
    this.#pump = new OutputPump(() => this.#onFlowChange());
    this.output$ = this.#pump.output$;
    this.#sources = [
      { name: 'stdout', stream: child.stdout, ended: false },
      { name: 'stderr', stream: child.stderr, ended: false },
    ];
    for (const source of this.#sources) {
      source.stream.on('readable', () => this.#read(source));
      const ended = (): void => {
        source.ended = true;
        this.#maybeEnd();
      };
      source.stream.on('end', ended);
      source.stream.on('close', ended);
      source.stream.on('error', ended);
    }
    this.exit = new Promise((resolve) => {
      child.once('exit', (exitCode, signal) => {
        this.#exited = true;
        resolve({ exitCode, signal });
        this.#maybeEnd();
        this.#updateDrainTimer();
      });
    });
  }

  pauseOutput(): void {
    this.#pump.pause();
  }

  resumeOutput(): void {
    this.#pump.resume();
  }

  write(data: Uint8Array): Promise<void> {
    if (!(data instanceof Uint8Array)) return Promise.reject(new TetherError('INVALID_ARGUMENT', 'write data must be a Uint8Array'));
    const stdin = this.#stdin;
    if (!stdin || stdin.writableEnded || stdin.destroyed) return Promise.reject(stdinClosed());
    if (data.byteLength === 0) return Promise.resolve();
    return writeToStdin(stdin, data).catch((error: Error) => Promise.reject(stdinClosed(error)));
  }

  closeStdin(): Promise<void> {
    const stdin = this.#stdin;
    this.#stdin = null;
    if (!stdin || stdin.writableEnded) return Promise.resolve();
    return new Promise((resolve) => stdin.end(() => resolve()));
  }

  signal(signal: string): void {
    signalGroup(this.pgid, signal);
  }

  resize(): void {
    throw new TetherError('NOT_A_TTY', 'the process was started without a terminal');
  }

  survivors(): Promise<number[]> {
    return findSurvivors(this.pgid, this.#id);
  }

  signalPids(pids: readonly number[], signal: string): void {
    signalPids(pids, signal);
  }

  #read(source: OutputSource): void {
    let data: Buffer | null;
    while (this.#pump.flowing && (data = source.stream.read() as Buffer | null) !== null) {
      this.#pump.push({ stream: source.name, data });
    }
  }

  #onFlowChange(): void {
    if (this.#pump.flowing) for (const source of this.#sources) this.#read(source);
    this.#updateDrainTimer();
  }

  #maybeEnd(): void {
    if (!this.#exited || !this.#sources.every((s) => s.ended)) return;
    this.#stopDrainTimer();
    this.#pump.end();
  }

  /** After the exit, pipes still open are given `drainTimeoutMs` of reading time, then closed. */
  #updateDrainTimer(): void {
    const running = this.#exited && !this.#pump.completed && this.#pump.flowing && !this.#sources.every((s) => s.ended);
    if (running && !this.#drainTimer) {
      this.#drainStartedAt = performance.now();
      this.#drainTimer = setTimeout(() => this.#drainExpired(), Math.max(0, this.#drainLeftMs));
    } else if (!running) {
      this.#stopDrainTimer();
    }
  }

  #stopDrainTimer(): void {
    if (!this.#drainTimer) return;
    clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    this.#drainLeftMs -= performance.now() - this.#drainStartedAt;
  }

  #drainExpired(): void {
    this.#drainTimer = undefined;
    this.#drainLeftMs = 0;
    for (const source of this.#sources) this.#read(source);
    // Paused while taking what was buffered: finish once resumed (the timer restarts at zero).
    if (!this.#pump.flowing) return;
    for (const source of this.#sources) {
      if (source.ended) continue;
      source.ended = true;
      source.stream.destroy();
    }
    this.#maybeEnd();
  }
}

function stdinClosed(cause?: unknown): TetherError {
  return new TetherError('STDIN_CLOSED', cause ? 'stdin was closed by the process' : 'stdin is not open for this process', {}, { cause });
}
