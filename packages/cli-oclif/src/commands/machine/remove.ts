import { Flags } from '@oclif/core';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';

export default class MachineRemove extends TetherCommand {
  static override summary = 'Remove a machine from the config file.';
  static override description =
    'Removes the machine from the config file, keeping the rest of the file (comments included), and prints {"ok":true,"action":"removed","name","config"}. An unknown name fails with "unknown machine" (exit 4). Nothing on the machine itself is touched.';
  static override examples = [{ description: 'Forget gpu1', command: '<%= config.bin %> machine remove --name gpu1' }];
  static override flags = {
    name: Flags.string({ description: 'the machine name', required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineRemove);
    this.useConfig(flags.config);
    const { path } = this.configFile();
    const { editMachines, findMachine } = await import('../../machineConfigEdit.js');
    await editMachines(path, (doc, form) => {
      const at = findMachine(doc, form, flags.name);
      if (at === undefined) throw new CliError('UNKNOWN_MACHINE', `unknown machine: ${flags.name} is not in ${path}`, { hint: 'tether machine list shows the configured machines' });
      doc.deleteIn(['machines', at]);
    });
    this.emit({ ok: true, action: 'removed', name: flags.name, config: path });
  }
}
