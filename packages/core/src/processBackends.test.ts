import { lastValueFrom, ReplaySubject, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { BackendRef } from './events.js';
import type { OutputChunk, ProcessBackend, ProcessExit, ProcessSpec, QueueUpdate, ReattachRequest, ReattachResult, RunningProcess } from './backends.js';
import { isTetherError } from './errors.js';
import { InMemoryEventStore } from './inMemoryEventStore.js';
import { createKernel } from './kernel.js';
import { definePlugin, PLUGIN_API_VERSION } from './plugin.js';
import { ProcessBackend as ProcessBackendToken } from './backends.js';

/**
 * A process the test drives by hand: it queues, runs, prints and exits when told. It stands for
 * what a backend reports through the port; the real backends are tested in their own packages.
 */
class ScriptedProcess implements RunningProcess {
  readonly pid: number | null = null;
  readonly pgid: number | null = null;
  // Replayed: like output files, what was written before the machine reads is still there.
  readonly output = new ReplaySubject<OutputChunk>();
  readonly output$ = this.output.asObservable();
  readonly queue = new Subject<QueueUpdate>();
  readonly queue$ = this.queue.asObservable();
  readonly signals: string[] = [];
  readonly exit: Promise<ProcessExit>;
  readonly running: Promise<BackendRef | undefined> | undefined;
  #exit!: (exit: ProcessExit) => void;
  #running!: (ref: BackendRef | undefined) => void;

  constructor(
    readonly ref: BackendRef | undefined,
    queues: boolean,
    readonly enforcesTimeout = false,
  ) {
    this.exit = new Promise((resolve) => (this.#exit = resolve));
    this.running = queues ? new Promise((resolve) => (this.#running = resolve)) : undefined;
  }
  run(ref?: BackendRef): void {
    this.queue.complete();
    this.#running(ref);
  }
  print(text: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
    this.output.next({ stream, data: new TextEncoder().encode(text) });
  }
  end(exit: ProcessExit): void {
    this.output.complete();
    this.#exit(exit);
  }
  pauseOutput(): void {}
  resumeOutput(): void {}
  async write(): Promise<void> {}
  async closeStdin(): Promise<void> {}
  signal(signal: string): void {
    this.signals.push(signal);
    if (signal === 'SIGTERM') this.end({ exitCode: null, signal: 'SIGTERM' });
  }
  resize(): void {}
  async survivors(): Promise<number[]> {
    return [];
  }
  signalPids(): void {}
}

class ScriptedBackend implements ProcessBackend {
  readonly spawned: Array<{ spec: ProcessSpec; process: ScriptedProcess }> = [];
  readonly reattachCalls: ReattachRequest[][] = [];
  closed = 0;
  answer: (request: ReattachRequest) => ReattachResult | undefined = () => undefined;
  constructor(
    readonly name: string,
    readonly make: (spec: ProcessSpec) => ScriptedProcess,
    withReattach = true,
  ) {
    if (!withReattach) this.reattach = undefined;
  }
  async spawn(spec: ProcessSpec): Promise<RunningProcess> {
    const process = this.make(spec);
    this.spawned.push({ spec, process });
    return process;
  }
  reattach?: ProcessBackend['reattach'] = async (requests) => {
    this.reattachCalls.push([...requests]);
    const answers = new Map<string, ReattachResult>();
    for (const request of requests) {
      const answer = this.answer(request);
      if (answer) answers.set(request.id, answer);
    }
    return answers;
  };
  close(): void {
    this.closed++;
  }
}

function backendPlugin(...backends: ProcessBackend[]) {
  return definePlugin({
    name: `backends-${backends.map((b) => b.name).join('-')}`,
    apiVersion: PLUGIN_API_VERSION,
    register: (ctx) => {
      for (const backend of backends) ctx.provide(ProcessBackendToken, { useValue: backend });
    },
  });
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return isTetherError(error) ? error.code : `not a TetherError: ${String(error)}`;
  }
  return undefined;
}

describe('process backends chosen per execution', () => {
  it('runs on the default backend unless spec.backend names another; an unknown name is BACKEND_UNAVAILABLE naming the known ones', async () => {
    const local = new ScriptedBackend('process', () => new ScriptedProcess(undefined, false));
    const batch = new ScriptedBackend('batch', () => new ScriptedProcess({ jobId: '7' }, true));
    const kernel = await createKernel({ plugins: [backendPlugin(local, batch)] });
    const exec = kernel.machine().exec;

    const plain = await exec.start({ argv: ['true'] });
    expect(local.spawned.map((s) => s.spec.id)).toEqual([plain.id]);
    expect(plain.spec?.backend).toBeUndefined();

    const queued = await exec.start({ command: 'echo hi', backend: 'batch', backendOptions: { partition: 'debug' }, timeoutMs: 60_000 });
    expect(batch.spawned).toHaveLength(1);
    expect(batch.spawned[0]!.spec).toMatchObject({ argv: ['sh', '-c', 'echo hi'], backendOptions: { partition: 'debug' }, timeoutMs: 60_000 });
    expect(queued).toMatchObject({ status: 'queued', backendRef: { jobId: '7' } });

    const error = await exec.start({ argv: ['true'], backend: 'nowhere' }).catch((e: unknown) => e);
    expect(isTetherError(error, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect((error as { details: Record<string, unknown> }).details['known']).toEqual(['process', 'batch']);
    expect(await codeOf(exec.start({ argv: ['true'], backend: 'Bad Name' }))).toBe('INVALID_ARGUMENT');

    local.spawned[0]!.process.end({ exitCode: 0, signal: null });
    batch.spawned[0]!.process.end({ exitCode: null, signal: null, lost: 'node failed' });
    await exec.wait(plain.id);
    expect(await exec.wait(queued.id)).toMatchObject({ endReason: 'lost' });
    await kernel.close();
    expect([local.closed, batch.closed]).toEqual([1, 1]);
  });

  it('a machine whose default backend is another one records the name in the spec', async () => {
    const local = new ScriptedBackend('process', () => new ScriptedProcess(undefined, false));
    const batch = new ScriptedBackend('batch', () => new ScriptedProcess({ jobId: '8' }, true));
    const kernel = await createKernel({ plugins: [backendPlugin(local, batch)], local: { defaultBackend: 'batch' } });
    const started = await kernel.machine().exec.start({ argv: ['true'] });
    expect(started.spec?.backend).toBe('batch');
    expect(local.spawned).toHaveLength(0);
    batch.spawned[0]!.process.end({ exitCode: 0, signal: null });
    await kernel.machine().exec.wait(started.id);
    await kernel.close();
  });

  it('a GPU gate is passed to a backend that schedules GPUs itself, instead of waiting on a GPU probe', async () => {
    const local = new ScriptedBackend('process', () => new ScriptedProcess(undefined, false));
    const cluster = Object.assign(new ScriptedBackend('cluster', () => new ScriptedProcess({ jobId: '5' }, true)), { schedulesGpus: true });
    const kernel = await createKernel({ plugins: [backendPlugin(local, cluster)] });
    const exec = kernel.machine().exec;
    const gate = { maxUtilizationPct: 10, maxMemoryUsedMiB: 1000 };
    // No GPU probe on this machine: the process backend cannot gate, the cluster can.
    expect(await codeOf(exec.start({ argv: ['true'], gpuGate: gate }))).toBe('BACKEND_UNAVAILABLE');
    const queued = await exec.start({ argv: ['true'], gpuGate: gate, backend: 'cluster' });
    expect(cluster.spawned[0]!.spec.gpuGate).toMatchObject(gate);
    expect(queued).toMatchObject({ status: 'queued', backendRef: { jobId: '5' } });
    cluster.spawned[0]!.process.end({ exitCode: 0, signal: null });
    await exec.wait(queued.id);
    await kernel.close();
  });

  it('records queue reasons, then the start with the merged handle, output, and the exit a backend reports', async () => {
    const batch = new ScriptedBackend('batch', () => new ScriptedProcess({ jobId: '9' }, true, true));
    const kernel = await createKernel({ plugins: [backendPlugin(batch)] });
    const exec = kernel.machine().exec;
    const started = await exec.start({ argv: ['true'], timeoutMs: 1 });
    const job = batch.spawned[0]!.process;
    const events$ = exec.follow(started.id).pipe(toArray());
    const all = lastValueFrom(events$);
    job.queue.next({ reason: 'Resources' });
    await expect.poll(async () => (await exec.get(started.id)).queueReason).toBe('Resources');
    job.run({ nodes: 'n1' });
    await expect.poll(async () => (await exec.get(started.id)).status).toBe('running');
    job.print('out\n');
    job.end({ exitCode: null, signal: null, stopReason: 'timeout', survivors: [] });
    const final = await exec.wait(started.id);
    expect(final).toMatchObject({ endReason: 'timed_out', backendRef: { jobId: '9', nodes: 'n1' }, queueReason: null });
    const types = (await all).map((e) => e.type);
    expect(types).toEqual(['ExecutionRequested', 'ExecutionQueued', 'ExecutionQueued', 'ExecutionStarted', 'OutputProduced', 'ExecutionExited']);
    // The backend enforces the timeout itself: the machine sent no signal of its own.
    expect(job.signals).toEqual([]);
    await kernel.close();
  });

  it('a job that runs and ends at once (both reported together) still has its start and output recorded', async () => {
    const batch = new ScriptedBackend('batch', () => new ScriptedProcess({ jobId: '10' }, true));
    const kernel = await createKernel({ plugins: [backendPlugin(batch)] });
    const exec = kernel.machine().exec;
    const started = await exec.start({ argv: ['true'] });
    const job = batch.spawned[0]!.process;
    job.run({ nodes: 'n1' });
    job.print('quick\n');
    job.end({ exitCode: 0, signal: null });
    const final = await exec.wait(started.id);
    expect(final).toMatchObject({ endReason: 'exited', exitCode: 0, bytes: { stdout: 6 }, backendRef: { nodes: 'n1' } });
    expect(final.startedAt).not.toBeNull();
    await kernel.close();
  });

  it('at start asks each backend once, with all of its interrupted executions, and records the rest lost', async () => {
    const store = new InMemoryEventStore();
    const batch = new ScriptedBackend('batch', () => new ScriptedProcess({ jobId: 'x' }, true));
    const other = new ScriptedBackend('other', () => new ScriptedProcess(undefined, false), false);
    const spec = (backend: string) => ({ argv: ['true'] as [string], envMode: 'merge' as const, stdin: false, backend });
    const enc = (s: string) => new TextEncoder().encode(s);
    // What a killed daemon left: two batch jobs (one running with output, one queued), one on a backend that cannot re-attach.
    await store.append('running-job', [
      { type: 'ExecutionRequested', data: { spec: spec('batch') } },
      { type: 'ExecutionQueued', data: { reason: null, ref: { jobId: '11' } } },
      { type: 'ExecutionStarted', data: { pid: null, pgid: null, tty: false, ref: { nodes: 'n1' } } },
      { type: 'OutputProduced', data: { stream: 'stdout', data: enc('abc') } },
      { type: 'OutputProduced', data: { stream: 'stderr', data: enc('de') } },
    ]);
    await store.append('queued-job', [
      { type: 'ExecutionRequested', data: { spec: spec('batch') } },
      { type: 'ExecutionQueued', data: { reason: 'Priority', ref: { jobId: '12' } } },
    ]);
    await store.append('elsewhere', [
      { type: 'ExecutionRequested', data: { spec: spec('other') } },
      { type: 'ExecutionStarted', data: { pid: 4242, pgid: 4242, tty: false } },
    ]);
    const resumed = new ScriptedProcess({ jobId: '11' }, false);
    batch.answer = (request) => (request.id === 'running-job' ? { process: resumed } : { lost: `job ${request.ref?.['jobId']} is gone` });

    const kernel = await createKernel({ plugins: [backendPlugin(batch, other)], store });
    expect(batch.reattachCalls).toHaveLength(1);
    const requests = [...batch.reattachCalls[0]!].sort((a, b) => a.id.localeCompare(b.id));
    expect(requests).toMatchObject([
      { id: 'queued-job', pid: null, ref: { jobId: '12' }, outputOffset: 0, resume: { stdout: 0, stderr: 0 } },
      { id: 'running-job', pid: null, ref: { jobId: '11', nodes: 'n1' }, outputOffset: 5, resume: { stdout: 3, stderr: 2 }, spec: { id: 'running-job', argv: ['true'] } },
    ]);
    const exec = kernel.machine().exec;
    expect(await exec.get('queued-job')).toMatchObject({ endReason: 'lost', error: { code: 'LOST', message: 'job 12 is gone' } });
    expect((await store.read('queued-job')).at(-1)).toMatchObject({ type: 'ExecutionLost', data: { reason: 'job 12 is gone' } });
    expect((await store.read('elsewhere')).at(-1)).toMatchObject({ type: 'ExecutionLost', data: { reason: 'the daemon restarted while it ran' } });

    // The re-attached one continues its stream where it was.
    expect(await exec.get('running-job')).toMatchObject({ status: 'running' });
    resumed.print('f\n');
    resumed.end({ exitCode: 3, signal: null });
    expect(await exec.wait('running-job')).toMatchObject({ endReason: 'exited', exitCode: 3, bytes: { stdout: 5, stderr: 2 } });
    await kernel.close();
  });
});
