import { Flags } from '@oclif/core';
import { TetherCommand, fanOutMachineFlag } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';
import { checkCouldNotRun, checkMachine, statusJson } from '../../machineStatus.js';

export default class MachineCheck extends TetherCommand {
  static override summary = 'Check that a machine answers.';
  static override description =
    'Connects to the machine\'s daemon (starting the local one if needed) and prints {"name","transport","ssh_ok","daemon_ok","latency_ms","checked_at","daemon_version"?,"error"?}; ssh_ok is null for transports without SSH; cloud machines (through a relay) add relay_ok: the relay answered and accepted this client. The check is a report: a machine that does not answer (no daemon, a refused token, something else on the port) is printed with daemon_ok false and its error, and the command still exits 0, so that a script under set -e can go on to machine up. It exits non-zero (error on stderr, nothing on stdout) only when the check could not run: a bad flag (2), a bad config (3), an unknown machine or transport (4).';
  static override examples = [
    { description: 'Is gpu1 reachable?', command: '<%= config.bin %> machine check --machine gpu1' },
    { description: 'Start and check the local daemon', command: '<%= config.bin %> machine check' },
    { description: 'Every machine labelled gpu, one line each', command: '<%= config.bin %> machine check --machine @gpu' },
  ];
  static override flags = {
    machine: fanOutMachineFlag('one Status line each'),
    timeout: Flags.string({ description: 'give up after this long', default: '8s' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineCheck);
    this.useConfig(flags.config);
    const timeoutMs = parseDuration(flags.timeout, 'timeout');
    this.errorContext.machine = flags.machine;
    const machines = await this.machines();
    const { isFanOut } = await import('../../fanOut.js');
    if (isFanOut(flags.machine)) return this.#fanOut(flags.machine, timeoutMs);
    if (flags.machine !== 'local') {
      // An unknown machine, a broken config, an unknown transport or bad machine fields are errors, not a status.
      this.errorContext.knownMachines = await machines.names();
      await machines.validate(flags.machine);
    }
    const status = await checkMachine(machines, flags.machine, timeoutMs);
    this.stopProgress();
    if (status.failure !== undefined && checkCouldNotRun(status.failure)) throw status.failure;
    this.emit(statusJson(status));
  }

  /** `--machine a,b` / `@label`: one Status line per machine, in the order given; exits with the first failure's code. */
  async #fanOut(spec: string, timeoutMs: number): Promise<void> {
    const { resolveTargets, failureLine } = await import('../../fanOut.js');
    const machines = await this.machines();
    const targets = await resolveTargets(machines, spec);
    const statuses = await Promise.all(targets.map((name) => checkMachine(machines, name, timeoutMs)));
    this.stopProgress();
    let exitCode = 0;
    for (const status of statuses) {
      this.emit(statusJson(status));
      if (status.failure !== undefined && exitCode === 0) exitCode = failureLine(status.name, status.failure).exitCode;
    }
    if (exitCode !== 0) process.exitCode = exitCode;
  }
}
