import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { FileSystemBackend, GpuProbe, ProcessBackend } from './backends.js';
import { TetherError } from './errors.js';
import { EventStore } from './eventStore.js';
import { InMemoryEventStore } from './inMemoryEventStore.js';
import { LocalMachine, type LocalMachineOptions } from './localMachine.js';
import type { MachineApi } from './machine.js';
import { loadPlugins, type PluginEntry, type PluginReport } from './plugin.js';
import { RemoteMachine, type ReconnectOptions } from './protocol/remoteMachine.js';
import { Transport, type MachineConfig } from './transport.js';

export interface KernelOptions {
  /** Plugins to load, in order (a plugin alone, or `{ plugin, config }`). */
  readonly plugins?: readonly PluginEntry[];
  /** Configured machines besides `local`. */
  readonly machines?: readonly MachineConfig[];
  /** Where executions are recorded. Default: a new in-memory store (closed with the kernel). */
  readonly store?: EventStore;
  /** Options for the `local` machine. */
  readonly local?: {
    readonly outputHighWaterBytes?: number;
    readonly notifications?: LocalMachineOptions['notifications'];
    /**
     * The process backend for executions whose spec names none. Default `process` if loaded,
     * else the first loaded. Others are chosen per execution by `spec.backend`.
     */
    readonly defaultBackend?: string;
  };
  /** How remote machines reconnect (a CLI call may want to give up sooner than a long-lived agent). */
  readonly remote?: { readonly reconnect?: ReconnectOptions };
  /**
   * Mark executions the store holds as running or queued as `lost` at start: with a store that
   * one process owns at a time (LevelDB locks its directory), nothing can still be running them.
   * Default true; turn off only if another live process shares the store.
   */
  readonly markInterruptedLost?: boolean;
}

/** The embedding entry point: plugins loaded, machines addressable by name. */
export interface Kernel {
  /** Which plugins loaded and which failed (with why); a failed plugin never stops the others. */
  readonly plugins: PluginReport;
  /** The kernel's DI container (a child of tsyringe's root), disposed with the kernel. */
  readonly container: DependencyContainer;
  /**
   * `local`, or a configured machine reached through the transport its config names (a
   * RemoteMachine that connects on first use). Fails with `UNKNOWN_MACHINE` / `TRANSPORT_UNAVAILABLE`.
   */
  machine(name?: string): MachineApi;
  /** Names of the addressable machines, `local` first. */
  machineNames(): string[];
  /** Cancels running executions, runs plugin disposers, disposes the container. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a kernel. Example:
 *
 * ```ts
 * const kernel = await createKernel({ plugins: [processPlugin] });
 * const run = await kernel.machine('local').exec.start({ command: 'echo hi' });
 * ```
 */
export async function createKernel(options: KernelOptions = {}): Promise<Kernel> {
  const container = rootContainer.createChildContainer();
  const ownsStore = options.store === undefined;
  const store = options.store ?? new InMemoryEventStore();
  container.register(EventStore, { useValue: store });
  const disposers: Array<() => void | Promise<void>> = [];
  const plugins = await loadPlugins(options.plugins ?? [], container, disposers);

  const optional = <T>(token: InjectionToken<T>): T | undefined => (container.isRegistered(token, true) ? container.resolve(token) : undefined);
  // Several plugins may provide process backends; each is chosen by its name.
  const processBackends = new Map<string, ProcessBackend>();
  for (const backend of container.isRegistered(ProcessBackend, true) ? container.resolveAll(ProcessBackend) : []) {
    const name = backend.name ?? 'process';
    if (!processBackends.has(name)) processBackends.set(name, backend);
  }
  const defaultBackend = options.local?.defaultBackend ?? (processBackends.has('process') ? 'process' : [...processBackends.keys()][0]);
  if (defaultBackend !== undefined && !processBackends.has(defaultBackend)) {
    await Promise.allSettled(disposers.reverse().map((dispose) => dispose()));
    throw new TetherError('BACKEND_UNAVAILABLE', `the default process backend "${defaultBackend}" is not loaded`, {
      backend: defaultBackend,
      known: [...processBackends.keys()],
    });
  }
  const local = new LocalMachine({
    name: 'local',
    store,
    process: defaultBackend === undefined ? undefined : processBackends.get(defaultBackend),
    processBackends,
    filesystem: optional(FileSystemBackend),
    gpu: optional(GpuProbe),
    outputHighWaterBytes: options.local?.outputHighWaterBytes,
    notifications: options.local?.notifications,
  });

  if (options.markInterruptedLost !== false) {
    await local.exec.markInterruptedLost();
    // This process owns the store: notifications a previous run owed are delivered now.
    void local.notifier.resume().catch(() => undefined);
  }

  const configs = new Map<string, MachineConfig>();
  for (const config of options.machines ?? []) {
    if (config.name === 'local') throw new TetherError('INVALID_ARGUMENT', 'the machine name "local" is reserved for this machine');
    if (configs.has(config.name)) throw new TetherError('INVALID_ARGUMENT', `machine "${config.name}" is configured twice`);
    configs.set(config.name, config);
  }

  // One connection per remote machine, made on its first call and re-made after drops.
  const remotes = new Map<string, RemoteMachine>();
  let closing: Promise<void> | undefined;
  return {
    plugins,
    container,
    machine(name = 'local') {
      if (name === 'local') return local;
      const config = configs.get(name);
      if (!config) {
        throw new TetherError('UNKNOWN_MACHINE', `unknown machine: ${name}`, { machine: name, known: ['local', ...configs.keys()] });
      }
      const transports = container.isRegistered(Transport, true) ? container.resolveAll(Transport) : [];
      if (!transports.some((t) => t.name === config.transport)) {
        throw new TetherError('TRANSPORT_UNAVAILABLE', `no transport "${config.transport}" is loaded for machine ${name}`, {
          machine: name,
          transport: config.transport,
        });
      }
      let remote = remotes.get(name);
      if (!remote) {
        const transport = transports.find((t) => t.name === config.transport)!;
        remote = new RemoteMachine({ name, connect: (signal) => transport.connect(config, signal), reconnect: options.remote?.reconnect });
        remotes.set(name, remote);
      }
      return remote;
    },
    machineNames: () => ['local', ...configs.keys()],
    close() {
      closing ??= (async () => {
        await Promise.allSettled([...remotes.values()].map((remote) => remote.close()));
        await local.exec.shutdown();
        await local.notifier.close();
        await Promise.allSettled([...new Set(processBackends.values())].map((backend) => backend.close?.()));
        for (const dispose of disposers.reverse()) await dispose();
        await container.dispose();
        if (ownsStore) await store.close();
      })();
      return closing;
    },
  };
}
