import { homedir, hostname } from 'node:os';
import type { FileSystemBackend, GpuProbe, ProcessBackend } from './backends.js';
import { CompletionNotifier, type CompletionNotifierOptions } from './completionNotifier.js';
import { TetherError } from './errors.js';
import { GpuGateOptions } from './events.js';
import type { EventStore } from './eventStore.js';
import { LocalExec } from './localExec.js';
import type { FsApi, GpuApi, MachineApi, MachineHealth, MachineInfo } from './machine.js';
import { parseInput } from './validate.js';
import { VERSION } from './version.js';

export interface LocalMachineOptions {
  /** Default `local`. */
  readonly name?: string;
  readonly store: EventStore;
  /** The default process backend. */
  readonly process?: ProcessBackend;
  /** Process backends an execution can choose by name (`spec.backend`). */
  readonly processBackends?: ReadonlyMap<string, ProcessBackend>;
  readonly filesystem?: FileSystemBackend;
  readonly gpu?: GpuProbe;
  /** Pause a process's output while this many bytes wait to be stored. Default 8 MiB. */
  readonly outputHighWaterBytes?: number;
  /** Retries and time limits of completion notifications (`spec.notify`). */
  readonly notifications?: Pick<CompletionNotifierOptions, 'urlAttempts' | 'retryBaseMs' | 'requestTimeoutMs' | 'commandTimeoutMs'>;
}

/**
 * The machine this process runs on, composed of whatever backends are registered. A missing
 * backend is not an error until it is used: its calls fail with `BACKEND_UNAVAILABLE`.
 */
export class LocalMachine implements MachineApi {
  readonly name: string;
  readonly exec: LocalExec;
  /** Delivers completion notifications of this machine's executions (see `CompletionNotifier`). */
  readonly notifier: CompletionNotifier;
  readonly fs: FsApi;
  readonly gpu: GpuApi;
  readonly #backends: MachineInfo['backends'];
  readonly #store: EventStore;
  readonly #startedAt = Date.now();

  constructor(options: LocalMachineOptions) {
    this.name = options.name ?? 'local';
    this.#store = options.store;
    this.notifier = new CompletionNotifier({ ...options.notifications, store: options.store, process: options.process, machineName: this.name });
    // Every terminal event this machine appends passes the notifier, whichever path appends it.
    this.exec = new LocalExec({ ...options, store: this.notifier.watch(options.store) });
    this.fs = options.filesystem ? fsApi(options.filesystem) : unavailable<FsApi>('filesystem', '@tether/plugin-filesystem');
    const gpu = options.gpu;
    this.gpu = gpu
      ? {
          probe: () => gpu.probe(),
          waitFree: (gate = {}, signal) => gpu.waitFree(parseInput(GpuGateOptions, gate, 'GPU gate'), signal),
        }
      : unavailable<GpuApi>('gpu', '@tether/plugin-gpu-nvidia');
    const names = [...new Set([...(options.process ? [options.process.name ?? 'process'] : []), ...(options.processBackends?.keys() ?? [])])];
    this.#backends = {
      process: options.process !== undefined,
      filesystem: options.filesystem !== undefined,
      gpu: gpu !== undefined,
      // Listed where there is a choice to make (a machine with only `process` shows what it always did).
      ...(names.length > 0 && !(names.length === 1 && names[0] === 'process') ? { processBackends: names } : {}),
    };
  }

  async info(): Promise<MachineInfo> {
    return {
      name: this.name,
      version: VERSION,
      os: process.platform,
      arch: process.arch,
      hostname: hostname(),
      home: homedir(),
      cwd: process.cwd(),
      pid: process.pid,
      backends: this.#backends,
    };
  }

  async health(): Promise<MachineHealth> {
    const store = this.#store.health?.() ?? { ok: true };
    return { ok: store.ok, uptimeMs: Date.now() - this.#startedAt, active: this.exec.activeCount, store };
  }
}

/** The backend's operations, `write` taking a string too (UTF-8). */
function fsApi(fs: FileSystemBackend): FsApi {
  return {
    stat: (path) => fs.stat(path),
    list: (path) => fs.list(path),
    read: (path, options) => fs.read(path, options),
    write: (path, data, options) => fs.write(path, typeof data === 'string' ? new TextEncoder().encode(data) : data, options),
    beginWrite: (path, options) => fs.beginWrite(path, options),
    writeChunk: (uploadId, offset, data) => fs.writeChunk(uploadId, offset, data),
    commitWrite: (uploadId) => fs.commitWrite(uploadId),
    abortWrite: (uploadId) => fs.abortWrite(uploadId),
    mkdir: (path, options) => fs.mkdir(path, options),
    remove: (path, options) => fs.remove(path, options),
    move: (from, to, options) => fs.move(from, to, options),
    ...(fs.symlink ? { symlink: (target: string, path: string) => fs.symlink!(target, path) } : {}),
  };
}

/** An API object whose every method fails with BACKEND_UNAVAILABLE. */
function unavailable<T extends object>(backend: string, plugin: string): T {
  return new Proxy({} as T, {
    get: (_target, method) =>
      typeof method === 'string' && method !== 'then'
        ? async () => {
            throw new TetherError('BACKEND_UNAVAILABLE', `this machine has no ${backend} backend: load ${plugin} (or another)`, { backend });
          }
        : undefined,
  });
}
