import { readFile } from 'node:fs/promises';
import {
  RemoteMachine,
  TetherError,
  type Channel,
  type MachineConfig,
  type ReconnectOptions,
  type Transport,
} from '@tether/core';
import { connectWs, type ConnectWsOptions } from './connectWs.js';
import { readToken } from './daemonToken.js';

/**
 * The client side of the `ws` transport: `connect(machine)` for machine configs with
 * `transport: ws`. Fields read from the config:
 *
 * ```yaml
 * - name: gpu1
 *   transport: ws
 *   addr: wss://gpu1.example:7337      # ws://, wss://, host:port (ws://) or a Unix socket path
 *   token: 3f2a…                        # or token_file: ~/.config/tether/gpu1.token (mode 0600)
 *   ca_file: ~/.config/tether/gpu1.pem  # optional, to trust a self-signed wss:// certificate
 * ```
 */
export class WsTransport implements Transport {
  readonly name = 'ws';

  async connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel> {
    const addr = machine['addr'];
    if (typeof addr !== 'string' || addr.length === 0) {
      throw new TetherError('INVALID_ARGUMENT', `machine ${machine.name} has no addr (ws://host:port, wss://host:port or a socket path)`, {
        machine: machine.name,
      });
    }
    const token = await tokenOf(machine);
    const caFile = stringField(machine, 'ca_file', 'caFile');
    const ca = caFile === undefined ? undefined : await readFile(expandHome(caFile));
    return connectWs(addr, { token, ca, signal });
  }
}

/** Options of `remoteMachine`: how to connect, plus the machine's name and reconnect policy. */
export interface RemoteWsMachineOptions extends Omit<ConnectWsOptions, 'signal'> {
  /** The machine's name, as errors and `info()` report it. Default `remote`. */
  readonly name?: string;
  readonly reconnect?: ReconnectOptions;
}

/**
 * A `RemoteMachine` served by the daemon at `url`, reconnecting by itself after drops.
 *
 * ```ts
 * const gpu1 = remoteMachine('ws://127.0.0.1:7337', { token, name: 'gpu1' });
 * const run = await gpu1.exec.start({ command: 'nvidia-smi' });
 * ```
 */
export function remoteMachine(url: string, options: RemoteWsMachineOptions): RemoteMachine {
  const { name = 'remote', reconnect, ...connect } = options;
  return new RemoteMachine({ name, reconnect, connect: (signal) => connectWs(url, { ...connect, signal }) });
}

async function tokenOf(machine: MachineConfig): Promise<string> {
  const token = machine['token'];
  if (typeof token === 'string' && token.length > 0) return token;
  const file = stringField(machine, 'token_file', 'tokenFile');
  if (file !== undefined) return readToken(expandHome(file));
  throw new TetherError('UNAUTHORIZED', `unauthorized: machine ${machine.name} has no token (set token or token_file)`, { machine: machine.name });
}

function stringField(machine: MachineConfig, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = machine[name];
    if (typeof value === 'string' && value.length > 0) return value;
  }
  return undefined;
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? `${process.env['HOME'] ?? ''}${path.slice(1)}` : path;
}
