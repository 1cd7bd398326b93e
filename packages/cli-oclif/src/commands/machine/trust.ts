import { Flags } from '@oclif/core';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';

export default class MachineTrust extends TetherCommand {
  static override summary = "Pin a cloud machine's daemon fingerprint in the config file.";
  static override description =
    'Sets fingerprint: F on the machine in the config file (comments and layout kept), as ssh-keyscan >> known_hosts does for SSH. Check F on the daemon\'s host first (tether daemon fingerprint): the client then refuses any other daemon the relay might pair it with. Prints {"ok","machine","fingerprint","previous","config"}.';
  static override examples = [{ description: 'Trust the daemon of gpu1', command: '<%= config.bin %> machine trust --machine gpu1 --fingerprint SHA256:3q2+7w…' }];
  static override flags = {
    machine: Flags.string({ char: 'm', description: 'the cloud machine (a name from the config file)', required: true }),
    fingerprint: Flags.string({ description: "the daemon's fingerprint: SHA256:<base64>", required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineTrust);
    this.useConfig(flags.config);
    this.errorContext.machine = flags.machine;
    const machines = await this.machines();
    const configured = await machines.configured(flags.machine);
    if (configured.config.transport !== 'cloud') {
      throw new CliError('INVALID_ARGUMENT', `machine ${flags.machine} uses transport ${configured.config.transport}: fingerprints are pinned for cloud machines`, {
        hint: 'ssh machines are pinned in known_hosts; ws machines by ca_file',
      });
    }
    const { normalizeFingerprint } = await import('@tether/transport-cloud');
    let fingerprint: string;
    try {
      fingerprint = normalizeFingerprint(flags.fingerprint);
    } catch (error) {
      throw new CliError('USAGE', `--fingerprint: ${(error as Error).message}`, { hint: 'copy it from tether daemon fingerprint on the daemon\'s host' });
    }
    const { setMachineField } = await import('../../machineConfigEdit.js');
    const previous = await setMachineField(machines.configPath, configured.where, 'fingerprint', fingerprint);
    this.emit({ ok: true, machine: flags.machine, fingerprint, previous: previous ?? null, config: machines.configPath });
  }
}
