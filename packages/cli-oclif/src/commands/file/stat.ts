import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { entryJson, machinePath } from '../../fileJson.js';

export default class FileStat extends TetherCommand {
  static override summary = 'Describe a file or directory on a machine.';
  static override description = 'Prints {"ok","name","path","type","size","mode","mtime","link_target"?} (symlinks are described, not followed).';
  static override examples = [{ description: 'Is the checkpoint there yet?', command: '<%= config.bin %> file stat --machine gpu1 --path /data/run/ckpt.pt' }];
  static override flags = {
    machine: machineFlag,
    path: Flags.string({ description: 'the path on the machine', required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(FileStat);
    this.useConfig(flags.config);
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const stat = await machine.fs.stat(machinePath(flags.path, isLocal));
    this.emit({ ok: true, ...entryJson(stat) });
  }
}
