import type { Channel, MachineConfig, Transport } from '@tether/core';

/** Failures of the machine or its daemon: a direct connection would meet them too, so they are passed on. */
const NOT_THE_TUNNEL = new Set(['UNAUTHORIZED', 'CONNECTION_LOST', 'PERMISSION_DENIED', 'ABORTED', 'TRANSPORT_UNAVAILABLE']);

/**
 * The CLI's `ssh` transport: through the machine's persistent tunnel (`TunnelTransport`), and,
 * when the tunnel itself cannot be started (no usable state directory, a socket path too long,
 * the tunnel process failing or not becoming ready…), through a direct SSH connection from this
 * process (`SshTransport`), which is slower per call but needs nothing on disk.
 */
export class TunnelFallbackTransport implements Transport {
  readonly name: string;
  readonly #tunnel: Transport;
  readonly #makeDirect: () => Transport & { close(): void };
  readonly #verbose: boolean;
  #direct: (Transport & { close(): void }) | undefined;

  constructor(tunnel: Transport, makeDirect: () => Transport & { close(): void }, options: { readonly verbose: boolean }) {
    this.name = tunnel.name;
    this.#tunnel = tunnel;
    this.#makeDirect = makeDirect;
    this.#verbose = options.verbose;
  }

  async connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel> {
    try {
      return await this.#tunnel.connect(machine, signal);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (signal?.aborted || (typeof code === 'string' && NOT_THE_TUNNEL.has(code))) throw error;
      if (this.#verbose) {
        const reason = error instanceof Error ? error.message : String(error);
        process.stderr.write(`${JSON.stringify({ tunnel: { machine: machine.name, fallback: 'direct', code: code ?? null, reason } })}\n`);
      }
      this.#direct ??= this.#makeDirect();
      return this.#direct.connect(machine, signal);
    }
  }

  /** Closes the direct connections (tunnels keep running until they are idle). */
  close(): void {
    this.#direct?.close();
  }
}
