import type { InjectionToken } from 'tsyringe';
import type { Observable } from 'rxjs';

/** A configured machine, as the user wrote it (the transport's own fields included). */
export interface MachineConfig {
  readonly name: string;
  /** Which transport reaches it (`ws`, `ssh`…); `local` for this process. */
  readonly transport: string;
  readonly [field: string]: unknown;
}

/**
 * A bidirectional message pipe to a peer: text frames carry JSON-RPC, binary frames carry bulk
 * output (see the protocol). Adapters turn a WebSocket, an SSH channel or a pair of pipes into one.
 */
export interface Channel {
  /**
   * Every message from the peer, in order. Completes when the channel closes normally and
   * errors with `CONNECTION_LOST` when it breaks.
   */
  readonly messages$: Observable<string | Uint8Array>;
  /** Queue a message. Throws `CONNECTION_LOST` once the channel is closed. */
  send(message: string | Uint8Array): void;
  /** Bytes queued but not yet handed to the OS, for backpressure (0 if the medium cannot tell). */
  readonly bufferedAmount: number;
  /**
   * Stop reading from the peer until `resume()`: the medium stops taking bytes, so a peer that
   * keeps sending is held back by the OS (TCP or socket flow control). Messages already received
   * may still arrive after the call. Optional: a channel without it cannot hold its peer back.
   */
  pause?(): void;
  /** Read from the peer again after `pause()`. */
  resume?(): void;
  /** Close the channel; `messages$` completes. Idempotent. */
  close(reason?: string): void;
}

/** Client side of a transport, contributed by a plugin (several may be registered). */
export interface Transport {
  /** The `transport` value of the machine configs it serves. */
  readonly name: string;
  connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel>;
}
export const Transport: InjectionToken<Transport> = Symbol.for('tether.Transport');
