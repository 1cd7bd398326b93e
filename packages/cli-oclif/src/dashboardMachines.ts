import type { MachineCheck, MachineDirectory } from '@tether/dashboard';
import { checkMachine, statusJson } from './machineStatus.js';
import { Machines, type OpenedMachine } from './machines.js';

/** How long the dashboard's health check of one machine may take. */
const CHECK_TIMEOUT_MS = 8000;

/**
 * The CLI's machines for a long-lived process (`tether dashboard`): each machine is opened once
 * and its connection (an SSH connection, the local daemon's socket) reused by every request,
 * until a call reports it lost; then the next request opens a new one.
 */
export class DashboardMachines extends Machines {
  readonly #open = new Map<string, Promise<OpenedMachine>>();

  override open(name: string, options?: { connectTimeoutMs?: number }): Promise<OpenedMachine> {
    let pending = this.#open.get(name);
    if (!pending) {
      pending = super.open(name, options);
      this.#open.set(name, pending);
      pending.catch(() => {
        if (this.#open.get(name) === pending) this.#open.delete(name);
      });
    }
    return pending;
  }

  async machine(name: string): Promise<OpenedMachine['machine']> {
    return (await this.open(name)).machine;
  }

  async check(name: string): Promise<MachineCheck> {
    const status = await checkMachine(this, name, CHECK_TIMEOUT_MS);
    if (!status.daemon_ok) this.failed(name);
    return statusJson(status);
  }

  failed(name: string): void {
    const pending = this.#open.get(name);
    this.#open.delete(name);
    void pending?.then((opened) => opened.machine.close()).catch(() => undefined);
  }

  /** The MachineDirectory the dashboard takes. */
  directory(): MachineDirectory {
    return {
      names: () => this.names(),
      open: (name) => this.machine(name),
      check: (name) => this.check(name),
      failed: (name) => this.failed(name),
    };
  }
}
