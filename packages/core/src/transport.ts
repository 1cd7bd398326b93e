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
 * A bidirectional message pipe to a daemon: text frames carry JSON-RPC, binary frames may
 * carry bulk output. Closing either side completes `messages$`.
 */
export interface Channel {
  readonly messages$: Observable<string | Uint8Array>;
  send(message: string | Uint8Array): void;
  close(reason?: string): void;
}

/** Client side of a transport, contributed by a plugin (several may be registered). */
export interface Transport {
  /** The `transport` value of the machine configs it serves. */
  readonly name: string;
  connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel>;
}
export const Transport: InjectionToken<Transport> = Symbol.for('tether.Transport');
