import { join } from 'node:path';
import type { Channel, Kernel, MachineConfig, RemoteMachine, Transport } from '@tether/core';
import { CliError } from './cliError.js';
import { loadRuntime } from './runtimeLoader.js';
import type { ConfiguredMachine, TetherConfig } from './config/configFile.js';
import { declaredKernelPlugins, type DeclaredKernelPlugin, type PackageInfo, type StandardSchema } from './kernelPlugins.js';
import { daemonFiles, tetherPaths, type DaemonFiles } from './paths.js';

/** What the CLI needs to reach machines. */
export interface MachineContext {
  /** `--config`, if given. */
  readonly configPath?: string;
  /** The CLI package's root (for `bin/run.js`, to start the local daemon). */
  readonly cliRoot: string;
  /** The CLI package's name (its own kernel plugins are the built-in ones). */
  readonly cliName: string;
  /** The CLI package and the oclif plugins installed into it, whose package.json may declare kernel plugins. */
  readonly packages: () => Iterable<PackageInfo>;
  /** Told when something slow starts (a spinner shows it on a terminal). */
  readonly onProgress?: (message: string) => void;
  /** `--verbose`: ssh tunnels print one JSON line of telemetry per connection on stderr. Default false. */
  readonly verbose?: boolean;
}

/** A machine ready for calls. */
export interface OpenedMachine {
  readonly name: string;
  /** `local` for the local daemon, else the config's transport. */
  readonly transport: string;
  readonly machine: RemoteMachine;
  readonly isLocal: boolean;
  /** The machine's config (none for `local`). */
  readonly config?: MachineConfig;
}

/** How long to wait for the first connection to a configured machine. Default 10 s. */
const CONNECT_TIMEOUT_MS = 10_000;
/** After a drop, how long a RemoteMachine keeps trying to reconnect before failing its calls. */
const RECONNECT_GIVE_UP_MS = 10_000;
/** The first-party ssh transport, whose connections the CLI routes through persistent tunnels. */
const SSH_PLUGIN = '@tether/transport-ssh';

/**
 * Opens machines by name: `local` through the local daemon (started on demand), others through
 * the transport their config names, loading only the kernel plugins that provide it.
 */
export class Machines {
  readonly #ctx: MachineContext;
  #config: Promise<TetherConfig> | undefined;
  readonly #opened: RemoteMachine[] = [];
  readonly #kernels: Kernel[] = [];
  readonly #closables: Array<{ close(): void }> = [];
  readonly #transports = new Map<string, Promise<{ transport?: Transport; schema?: StandardSchema; reasons: string[] }>>();

  constructor(ctx: MachineContext) {
    this.#ctx = ctx;
  }

  /** The local daemon's files. */
  get localFiles(): DaemonFiles {
    return daemonFiles(tetherPaths().stateDir);
  }

  /** The config file's path (from `--config` or the default). */
  get configPath(): string {
    return this.#ctx.configPath ?? tetherPaths().configFile;
  }

  config(): Promise<TetherConfig> {
    // Without --config and without tether's own file, codex-remote's config is read (a drop-in should find the machines).
    const explicit = this.#ctx.configPath !== undefined;
    this.#config ??= loadRuntime().then(({ loadConfig }) => loadConfig(this.configPath, explicit, explicit ? undefined : tetherPaths().codexRemoteConfigFile));
    return this.#config;
  }

  /** `local`, then the configured machines in file order. */
  async names(): Promise<string[]> {
    return ['local', ...(await this.config()).machines.map((m) => m.config.name)];
  }

  async open(name: string, options: { connectTimeoutMs?: number } = {}): Promise<OpenedMachine> {
    if (name === 'local') return this.#openLocal();
    return this.#openConfigured(await this.configured(name), options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
  }

  /** A configured machine by name (not `local`); `UNKNOWN_MACHINE` when the config has none. */
  async configured(name: string): Promise<ConfiguredMachine> {
    const config = await this.config();
    const configured = config.machines.find((m) => m.config.name === name);
    if (!configured) {
      throw new CliError('UNKNOWN_MACHINE', `unknown machine: ${name}`, {
        hint: `known machines: ${(await this.names()).join(', ')}${
          config.codexRemote ? ` (from codex-remote's ${config.path}, read because tether has no config; tether machine import copies it)` : config.exists ? ` (from ${config.path})` : `; no config file at ${config.path}`
        }`,
      });
    }
    return configured;
  }

  /**
   * Checks a configured machine without connecting: it exists, its transport is available and
   * its fields are valid for that transport. Throws what `open` would (`UNKNOWN_MACHINE`,
   * `TRANSPORT_UNAVAILABLE`, `CONFIG_INVALID`); `local` is always valid.
   */
  async validate(name: string): Promise<void> {
    if (name === 'local') return;
    await this.#transport(await this.configured(name));
  }

  /** Closes every machine and kernel opened. */
  async close(): Promise<void> {
    await Promise.allSettled(this.#opened.map((m) => m.close()));
    await Promise.allSettled(this.#kernels.map((k) => k.close()));
    for (const closable of this.#closables) closable.close();
  }

  async #openLocal(): Promise<OpenedMachine> {
    const { connectLocalDaemon, RemoteMachine, connectWs } = await loadRuntime();
    const files = this.localFiles;
    const serveCommand: [string, ...string[]] = [process.execPath, join(this.#ctx.cliRoot, 'bin', 'run.js'), 'daemon', 'serve', '--data-dir', files.dataDir, '--listen', 'none'];
    if (this.#ctx.configPath !== undefined) serveCommand.push('--config', this.#ctx.configPath);
    const { channel, token } = await connectLocalDaemon({
      files,
      serveCommand,
      onStarting: () => this.#ctx.onProgress?.('starting the local tether daemon'),
    });
    const machine = new RemoteMachine({
      name: 'local',
      connect: firstThen(channel, (signal) => connectWs(files.socket, { token, signal })),
      reconnect: { giveUpAfterMs: RECONNECT_GIVE_UP_MS },
    });
    this.#opened.push(machine);
    return { name: 'local', transport: 'local', machine, isLocal: true };
  }

  async #openConfigured(configured: ConfiguredMachine, connectTimeoutMs: number): Promise<OpenedMachine> {
    const { config: machineConfig } = configured;
    const transport = await this.#transport(configured);
    const { RemoteMachine } = await loadRuntime();
    let first: Channel;
    const timeout = AbortSignal.timeout(connectTimeoutMs);
    try {
      first = await transport.connect(machineConfig, timeout);
    } catch (error) {
      // A field the transport could not use (an addr that is not an address…) is the config's fault, not the flags'.
      if ((error as { code?: unknown }).code === 'INVALID_ARGUMENT') {
        const config = await this.config();
        throw new CliError('CONFIG_INVALID', `${config.path}: machine ${machineConfig.name}: ${(error as Error).message}`, {
          hint: `fix machine ${machineConfig.name} (${configured.where}) in ${config.path}`,
          cause: error,
        });
      }
      if (timeout.aborted) {
        throw new CliError('CONNECTION_LOST', `connection refused: machine ${machineConfig.name} did not answer within ${connectTimeoutMs / 1000}s`, {
          hint: `check that ${machineConfig.name} is reachable: tether machine check --machine ${machineConfig.name}`,
          cause: error,
        });
      }
      throw error;
    }
    const machine = new RemoteMachine({
      name: machineConfig.name,
      connect: firstThen(first, (signal) => transport.connect(machineConfig, signal)),
      reconnect: { giveUpAfterMs: RECONNECT_GIVE_UP_MS },
    });
    this.#opened.push(machine);
    return { name: machineConfig.name, transport: machineConfig.transport, machine, isLocal: false, config: machineConfig };
  }

  /** The machine's transport (its plugins loaded once per transport name), after checking the machine's fields with its schema. */
  async #transport(configured: ConfiguredMachine): Promise<Transport> {
    const { config: machine, where } = configured;
    const name = machine.transport;
    let pending = this.#transports.get(name);
    if (!pending) this.#transports.set(name, (pending = this.#loadTransport(name)));
    const { transport, schema, reasons } = await pending;
    const config = await this.config();
    if (!transport) {
      throw new CliError('TRANSPORT_UNAVAILABLE', `no transport "${name}" is available for machine ${machine.name}${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`, {
        hint:
          name === 'ssh'
            ? 'the ssh transport comes with @tether/transport-ssh: install it (tether plugins install @tether/transport-ssh)'
            : `install a plugin that provides transport "${name}" (tether plugins install <package>), or fix ${where}.transport in ${config.path}`,
        details: { transport: name },
      });
    }
    if (schema) {
      const { checkMachineFields, suggestion, formatIssues, commonMachineFields } = await loadRuntime();
      const verdict = await checkMachineFields(schema, machine, await commonMachineFields());
      if (verdict && 'unknown' in verdict) {
        throw new CliError('CONFIG_INVALID', `${config.path}: ${where}.${verdict.unknown}: unknown field${suggestion(verdict.unknown, verdict.known)}`, {
          hint: `fix machine ${machine.name} in ${config.path}: the fields of a machine with transport ${name} are ${verdict.known.join(', ')}`,
        });
      }
      if (verdict) {
        const { issue } = verdict;
        const missingToken = name === 'ws' && issue.path?.[0] === 'token' && machine['token'] === undefined && machine['token_file'] === undefined;
        throw new CliError('CONFIG_INVALID', `${config.path}: ${formatIssues([issue], where)}`, {
          hint: missingToken
            ? `a tether daemon always wants its token (codexd without auth_token did not): copy the daemon's token file from ${machine.name} (~/.local/state/tether/token there, or <data-dir>/token) to ~/.config/tether/${machine.name}.token (mode 0600), and set token_file: ~/.config/tether/${machine.name}.token for machine ${machine.name} in ${config.path}`
            : `fix machine ${machine.name} in ${config.path}`,
        });
      }
    }
    return transport;
  }

  /** Imports the plugins that provide transport `name` into a kernel of their own. */
  async #loadTransport(name: string): Promise<{ transport?: Transport; schema?: StandardSchema; reasons: string[] }> {
    const { importKernelPlugins, Transport: TransportToken, WsMachineFields, createKernel, pluginEntries } = await loadRuntime();
    const declared = declaredKernelPlugins(this.#ctx.packages());
    const providers = declared.filter((d) => d.transports?.includes(name));
    // A plugin that did not declare its transports might still provide this one.
    const candidates: DeclaredKernelPlugin[] = providers.length > 0 ? providers : declared.filter((d) => !d.transports && d.declaredBy !== this.#ctx.cliName);
    const { loaded, failed } = await importKernelPlugins(candidates);
    const configs = { ...(await this.config()).plugins };
    const tunnelled = name === 'ssh' && loaded.some((l) => l.plugin.name === SSH_PLUGIN) && this.#useTunnels(configs);
    const kernel = await createKernel({ plugins: pluginEntries(loaded, configs), markInterruptedLost: false });
    this.#kernels.push(kernel);
    const transports = kernel.container.isRegistered(TransportToken, true) ? kernel.container.resolveAll(TransportToken) : [];
    // The ws transport's package exports no schema for its fields: the CLI has one.
    const schema = loaded.find((l) => l.machineSchemas[name])?.machineSchemas[name] ?? (name === 'ws' ? WsMachineFields : undefined);
    let transport = transports.find((t) => t.name === name);
    if (transport && tunnelled) transport = await this.#withDirectFallback(transport, configs[SSH_PLUGIN]);
    return {
      transport,
      schema,
      reasons: [...failed.map((f) => f.reason), ...kernel.plugins.failed.map((f) => f.error.message)],
    };
  }

  /**
   * Every CLI call is a new process: the ssh plugin is told to go through persistent tunnels
   * (one background process per machine, kept for the next calls) by giving it a
   * `tunnelStateDir`, unless the config's `plugins:` section already chose one.
   * `TETHER_SSH_TUNNEL=0` connects directly instead. Returns whether tunnels are on.
   */
  #useTunnels(configs: Record<string, unknown>): boolean {
    if (process.env['TETHER_SSH_TUNNEL'] === '0') return false;
    const own = configs[SSH_PLUGIN] ?? {};
    if (typeof own !== 'object' || own === null || Array.isArray(own)) return false; // the plugin reports its bad config
    const record = own as Record<string, unknown>;
    configs[SSH_PLUGIN] = {
      ...record,
      tunnelStateDir: record['tunnelStateDir'] ?? tetherPaths().stateDir,
      ...(this.#ctx.verbose ? { tunnelVerbose: true } : {}),
    };
    return true;
  }

  /** The tunnel transport, with a direct SSH connection from this process when a tunnel cannot be started. */
  async #withDirectFallback(transport: Transport, pluginConfig: unknown): Promise<Transport> {
    const ssh = await (await loadRuntime()).loadSsh();
    if (!(transport instanceof ssh.TunnelTransport)) return transport;
    const { TunnelFallbackTransport } = await import('./tunnelFallback.js');
    const parsed = ssh.pluginConfig.parse(pluginConfig ?? {});
    const { tunnelStateDir: _dir, tunnelIdleTimeoutMs: _idle, tunnelVerbose: _verbose, ...direct } = parsed;
    const fallback = new TunnelFallbackTransport(transport, () => new ssh.SshTransport(direct), { verbose: this.#ctx.verbose ?? false });
    this.#closables.push(fallback);
    return fallback;
  }
}

/** A connect function that hands out an already open channel first, then opens new ones. */
function firstThen(first: Channel, next: (signal: AbortSignal) => Promise<Channel>): (signal: AbortSignal) => Promise<Channel> {
  let pending: Channel | undefined = first;
  return async (signal) => {
    const channel = pending;
    pending = undefined;
    return channel ?? next(signal);
  };
}
