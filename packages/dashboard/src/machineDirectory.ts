import type { MachineApi } from '@tether/core';

/** A machine's health as `tether machine check` reports it. */
export interface MachineCheck {
  readonly name: string;
  /** `local` for the local daemon, else the config's transport; null when unknown. */
  readonly transport: string | null;
  /** null for transports without SSH. */
  readonly ssh_ok: boolean | null;
  readonly daemon_ok: boolean;
  readonly latency_ms: number | null;
  readonly checked_at: string;
  readonly daemon_version?: string;
  readonly error?: string;
}

/**
 * How the dashboard reaches machines. The CLI passes one built on its own machine code (config,
 * transports, the local daemon, SSH connections), so the dashboard sees exactly the machines and
 * connections the CLI does; an embedder can pass any other.
 */
export interface MachineDirectory {
  /** Every machine, in display order (`local` first for the CLI). */
  names(): Promise<readonly string[]>;
  /**
   * The machine, connected. Called for every request: the directory keeps connections open and
   * hands the same one out again. Rejects with `UNKNOWN_MACHINE` for a name it does not know.
   */
  open(name: string): Promise<MachineApi>;
  /** Connects if needed and checks health; never rejects for an unreachable machine. */
  check(name: string): Promise<MachineCheck>;
  /** Tells the directory a machine's connection failed, so the next `open` makes a new one. */
  failed?(name: string): void;
}
