import type { MachineConfig } from '@tether/core';
import type { SshConnectOptions, SshMachineConfig } from '@tether/transport-ssh';
import { CliError } from './cliError.js';
import type { Machines } from './machines.js';
import { loadRuntime } from './runtimeLoader.js';

export type SshModule = typeof import('@tether/transport-ssh');

/** An `ssh` machine, with what a command needs to reach the machine itself over SSH (not its daemon). */
export interface SshMachine {
  readonly name: string;
  /** The machine's config, checked by the ssh transport's schema (defaults applied: `daemon_port`…). */
  readonly config: MachineConfig & SshMachineConfig;
  /** How to connect, from the config's `plugins: { "@tether/transport-ssh": {…} }` section. */
  readonly connectOptions: Omit<SshConnectOptions, 'signal' | 'forwardAgent'>;
  /** The config file, for hints. */
  readonly configPath: string;
  readonly ssh: SshModule;
}

const PLUGIN = '@tether/transport-ssh';

/** Imports the ssh transport package; `TRANSPORT_UNAVAILABLE` when it is not installed. */
export async function loadSshModule(): Promise<SshModule> {
  try {
    return await (await loadRuntime()).loadSsh();
  } catch (error) {
    throw new CliError('TRANSPORT_UNAVAILABLE', `the ssh transport (${PLUGIN}) cannot be loaded: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`, {
      hint: `install it: tether plugins install ${PLUGIN}`,
      details: { transport: 'ssh' },
      cause: error,
    });
  }
}

/**
 * The configured machine `name`, which must use the `ssh` transport. Fails with
 * `UNKNOWN_MACHINE`, `INVALID_ARGUMENT` (not an ssh machine) or `CONFIG_INVALID`.
 */
export async function sshMachine(machines: Machines, name: string, command: string): Promise<SshMachine> {
  if (name === 'local') {
    throw new CliError('INVALID_ARGUMENT', `${command} works on machines reached over SSH; "local" is this machine`, {
      hint: 'pass --machine with an ssh machine of the config file',
    });
  }
  const { config: machine, where } = await machines.configured(name);
  const config = await machines.config();
  if (machine.transport !== 'ssh') {
    throw new CliError('INVALID_ARGUMENT', `${command} works on machines reached over SSH; ${name} uses the ${machine.transport} transport`, {
      hint: `give ${name} an ssh field (transport: ssh) in ${config.path}, or use another machine`,
    });
  }
  const ssh = await loadSshModule();
  const parsed = ssh.machineSchema.safeParse(machine);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliError('CONFIG_INVALID', `${config.path}: ${where}${issue.path.map((p) => `.${String(p)}`).join('')}: ${issue.message}`, { hint: `fix machine ${name} in ${config.path}` });
  }
  const plugin = ssh.pluginConfig.safeParse(config.plugins[PLUGIN] ?? {});
  if (!plugin.success) {
    const issue = plugin.error.issues[0]!;
    throw new CliError('CONFIG_INVALID', `${config.path}: plugins.${PLUGIN}${issue.path.map((p) => `.${String(p)}`).join('')}: ${issue.message}`, {
      hint: `fix the plugins section of ${config.path}`,
    });
  }
  // Only the options of an SSH connection; the transport's and the tunnel's are not for a plain connection.
  const { idleTimeoutMs: _a, handshakeTimeoutMs: _b, maxPayloadBytes: _c, tunnelStateDir: _d, tunnelIdleTimeoutMs: _e, tunnelVerbose: _f, ...connectOptions } = plugin.data;
  return { name, config: { ...machine, ...parsed.data }, connectOptions, configPath: config.path, ssh };
}
