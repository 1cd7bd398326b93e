import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';
import { checkMachine, statusJson } from '../../machineStatus.js';

export default class MachineCheck extends TetherCommand {
  static override summary = 'Check that a machine answers.';
  static override description =
    'Connects to the machine\'s daemon (starting the local one if needed) and prints {"name","transport","ssh_ok","daemon_ok","latency_ms","checked_at","daemon_version"?,"error"?}; ssh_ok is null for transports without SSH; cloud machines (through a relay) add relay_ok: the relay answered and accepted this client. A machine that does not answer is printed with daemon_ok false and its error, and the command exits non-zero (6: not reachable, 7: refused the token).';
  static override examples = [
    { description: 'Is gpu1 reachable?', command: '<%= config.bin %> machine check --machine gpu1' },
    { description: 'Start and check the local daemon', command: '<%= config.bin %> machine check' },
  ];
  static override flags = {
    machine: machineFlag,
    timeout: Flags.string({ description: 'give up after this long', default: '8s' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineCheck);
    this.useConfig(flags.config);
    const timeoutMs = parseDuration(flags.timeout, 'timeout');
    this.errorContext.machine = flags.machine;
    const machines = await this.machines();
    if (flags.machine !== 'local') {
      // An unknown machine (or a broken config) is an error, not a status.
      const names = await machines.names();
      this.errorContext.knownMachines = names;
      if (!names.includes(flags.machine)) await machines.open(flags.machine);
    }
    const status = await checkMachine(machines, flags.machine, timeoutMs);
    this.stopProgress();
    this.emit(statusJson(status));
    if (status.failure !== undefined) throw status.failure;
  }
}
