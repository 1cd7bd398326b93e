// Shared by this package's tests: start real processes, collect their output, leave nothing behind.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { OutputChunk, ProcessExit, ProcessSpec, RunningProcess } from '@tether/core';
import { ChildProcessBackend } from '../src/childProcessBackend.js';
import type { ProcessConfigInput } from '../src/processConfig.js';

export type StartSpec = Partial<Omit<ProcessSpec, 'argv'>> & { argv: ProcessSpec['argv'] };

export interface Collected {
  readonly exit: ProcessExit;
  readonly chunks: OutputChunk[];
  /** All bytes of one stream, in order. */
  bytes(stream: OutputChunk['stream']): Buffer;
  text(stream: OutputChunk['stream']): string;
}

export function newId(): string {
  return `t${process.pid}-${randomBytes(5).toString('hex')}`;
}

/** A backend plus the bookkeeping to kill whatever a test started. */
export class Harness {
  readonly backend: ChildProcessBackend;
  readonly #started: Array<{ proc: RunningProcess; id: string }> = [];

  constructor(options: ProcessConfigInput = {}) {
    this.backend = new ChildProcessBackend(options);
  }

  async start(spec: StartSpec): Promise<RunningProcess> {
    const id = spec.id ?? newId();
    const proc = await this.backend.spawn({ envMode: 'merge', stdin: false, ...spec, id });
    this.#started.push({ proc, id });
    return proc;
  }

  /** Subscribes at once; resolves after the exit and the output's completion. */
  async collect(proc: RunningProcess): Promise<Collected> {
    const chunks: OutputChunk[] = [];
    const completed = new Promise<void>((resolve, reject) => {
      proc.output$.subscribe({ next: (chunk) => chunks.push(chunk), error: reject, complete: resolve });
    });
    const [exit] = await Promise.all([proc.exit, completed]);
    const bytes = (stream: OutputChunk['stream']): Buffer =>
      Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength)));
    return { exit, chunks, bytes, text: (stream) => bytes(stream).toString('utf8') };
  }

  async run(spec: StartSpec): Promise<Collected> {
    return this.collect(await this.start(spec));
  }

  /** SIGKILL every group and tagged survivor a test started, and wait until all are gone. */
  async cleanup(): Promise<void> {
    const started = this.#started.splice(0);
    for (const { proc } of started) proc.signal('SIGKILL');
    await waitFor(
      async () => {
        let left = 0;
        for (const { proc } of started) {
          const survivors = await proc.survivors();
          proc.signalPids(survivors, 'SIGKILL');
          left += survivors.length;
        }
        return left === 0;
      },
      'every process started by the test to be gone',
    );
  }
}

/** Polls `condition` until it returns something truthy, or fails after `timeoutMs`. */
export async function waitFor<T>(condition: () => T | Promise<T>, what: string, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session; undefined if gone. */
export function procStat(pid: number): { state: string; ppid: number; pgrp: number; session: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const [state, ppid, pgrp, session] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: state!, ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session) };
}

/** Alive = present and not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** Live members of process group `pgid`, found independently of the code under test. */
export function groupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => {
      const stat = procStat(pid);
      return stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X';
    });
}

/** Resolves with the output so far (all streams, as latin1) once it contains or matches `needle`. */
export function outputContaining(proc: RunningProcess, needle: string | RegExp): Promise<string> {
  const found = (text: string): boolean => (typeof needle === 'string' ? text.includes(needle) : needle.test(text));
  return new Promise((resolve, reject) => {
    let text = '';
    const subscription = proc.output$.subscribe({
      next: (chunk) => {
        text += Buffer.from(chunk.data).toString('latin1');
        if (found(text)) {
          queueMicrotask(() => subscription.unsubscribe());
          resolve(text);
        }
      },
      error: reject,
      complete: () => (found(text) ? resolve(text) : reject(new Error(`output ended without ${String(needle)}: ${JSON.stringify(text)}`))),
    });
  });
}
