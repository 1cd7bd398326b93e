import type { Channel, MachineConfig, Transport } from '@tether/core';
import { connectViaTunnel, type TunnelTelemetry } from './connectViaTunnel.js';
import { SshTransport, type SshTransportOptions } from './sshTransport.js';

/** Options of `TunnelTransport`: how to connect (`SshTransportOptions`), and the tunnels'. */
export interface TunnelTransportOptions extends SshTransportOptions {
  /** The user's state directory; tunnels live in `<stateDir>/tunnels/`. */
  readonly stateDir: string;
  /** A tunnel this transport starts exits after this long without connections. Default 10 minutes. */
  readonly tunnelIdleTimeoutMs?: number;
  /** Give up on a starting tunnel after this long. Default 30 000 ms. */
  readonly startTimeoutMs?: number;
  /** The program that runs a tunnel (see `connectViaTunnel`). Default `node dist/tunnelMain.js`. */
  readonly command?: readonly [string, ...string[]];
  /** Write one JSON line of tunnel telemetry on stderr per connection. Default false. */
  readonly verbose?: boolean;
  readonly onTelemetry?: (telemetry: TunnelTelemetry) => void;
}

/**
 * The `ssh` transport for short-lived processes such as the CLI: each `connect(machine)` goes
 * through the machine's persistent local tunnel (`connectViaTunnel`), started on first use and
 * shared by every later process until it has been idle for `tunnelIdleTimeoutMs`. A machine
 * whose config says `tunnel: false` is connected directly, as `SshTransport` does.
 *
 * ```ts
 * const transport = new TunnelTransport({ stateDir: '~/.local/state/tether' });
 * const channel = await transport.connect({ name: 'gpu1', transport: 'ssh', ssh: 'gpu1' });
 * ```
 */
export class TunnelTransport implements Transport {
  readonly name = 'ssh';
  readonly #options: TunnelTransportOptions;
  #direct: SshTransport | undefined;

  constructor(options: TunnelTransportOptions) {
    this.#options = options;
  }

  connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel> {
    const { stateDir, tunnelIdleTimeoutMs, startTimeoutMs, command, verbose, onTelemetry, idleTimeoutMs, handshakeTimeoutMs, keepalive, maxPayloadBytes, ...ssh } =
      this.#options;
    if (machine?.['tunnel'] === false) {
      this.#direct ??= new SshTransport(this.#options);
      return this.#direct.connect(machine, signal);
    }
    return connectViaTunnel(machine, {
      stateDir,
      ssh,
      idleTimeoutMs: tunnelIdleTimeoutMs,
      startTimeoutMs,
      command,
      verbose,
      onTelemetry,
      handshakeTimeoutMs,
      keepalive,
      maxPayloadBytes,
      signal,
    });
  }

  /** Closes the direct SSH connections (`tunnel: false` machines); tunnels keep running until idle. */
  close(): void {
    this.#direct?.close();
  }
}
