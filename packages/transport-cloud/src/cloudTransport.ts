import { readFile } from 'node:fs/promises';
import { RemoteMachine, TetherError, type Channel, type MachineConfig, type ReconnectOptions, type Transport } from '@tether/core';
import { readToken } from '@tether/transport-ws';
import { connectCloud, type ConnectCloudOptions } from './connectCloud.js';
import { machineSchema } from './machineSchema.js';

/**
 * The client side of the `cloud` transport: `connect(machine)` for machine configs with
 * `transport: cloud` (fields: see `machineSchema`). Each connection is its own pairing through
 * the relay, with its own TLS session to the daemon.
 */
export class CloudTransport implements Transport {
  readonly name = 'cloud';

  async connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel> {
    return connectCloud({ ...(await cloudOptions(machine)), signal });
  }
}

/** The options of `connectCloud` for a machine config (its files read). */
export async function cloudOptions(machine: MachineConfig): Promise<Omit<ConnectCloudOptions, 'signal'>> {
  const parsed = machineSchema.safeParse(machine);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TetherError('INVALID_ARGUMENT', `machine ${machine.name}: ${issue.path.join('.') || 'config'}: ${issue.message}`, { machine: machine.name });
  }
  const m = parsed.data;
  const token = m.token ?? (await readToken(expandHome(m.token_file!)));
  const relayToken = m.relay_token ?? (await readToken(expandHome(m.relay_token_file!)));
  let relayCa: Buffer | undefined;
  if (m.relay_ca_file !== undefined) {
    try {
      relayCa = await readFile(expandHome(m.relay_ca_file));
    } catch (error) {
      throw new TetherError('PATH_NOT_FOUND', `machine ${machine.name}: cannot read relay_ca_file ${m.relay_ca_file}`, { machine: machine.name }, { cause: error });
    }
  }
  return { relay: m.relay, environment: m.environment ?? machine.name, fingerprint: m.fingerprint, token, relayToken, relayCa, machine: machine.name };
}

/** Options of `cloudMachine`: how to connect, plus the machine's name and reconnect policy. */
export interface CloudMachineOptions extends Omit<ConnectCloudOptions, 'signal'> {
  readonly name?: string;
  readonly reconnect?: ReconnectOptions;
}

/**
 * A `RemoteMachine` reached through a relay, reconnecting (a new pairing each time) after drops.
 *
 * ```ts
 * const gpu1 = cloudMachine({ relay: 'wss://relay.example:8443', environment: 'gpu1', fingerprint, token, relayToken });
 * ```
 */
export function cloudMachine(options: CloudMachineOptions): RemoteMachine {
  const { name, reconnect, ...connect } = options;
  return new RemoteMachine({ name: name ?? options.environment, reconnect, connect: (signal) => connectCloud({ ...connect, signal }) });
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? `${process.env['HOME'] ?? ''}${path.slice(1)}` : path;
}
