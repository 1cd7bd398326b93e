import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { machinePath } from '../../fileJson.js';

export default class FileRm extends TetherCommand {
  static override summary = 'Remove a file or directory on a machine.';
  static override description =
    'Removes a file, a symlink (never its target), an empty directory, or with --recursive a whole tree. Prints {"ok":true,"path","removed":true}; with --force a missing path is not an error ("removed":false).';
  static override examples = [
    { description: 'Remove a file', command: '<%= config.bin %> file rm --machine gpu1 --path /data/tmp/out.log' },
    { description: 'Remove a directory tree', command: '<%= config.bin %> file rm --machine gpu1 --path /data/tmp/run-3 --recursive' },
  ];
  static override flags = {
    machine: machineFlag,
    path: Flags.string({ description: 'the path on the machine', required: true }),
    recursive: Flags.boolean({ char: 'r', description: 'remove a directory and everything in it' }),
    force: Flags.boolean({ char: 'f', description: 'a path that does not exist is not an error' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(FileRm);
    this.useConfig(flags.config);
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const path = machinePath(flags.path, isLocal);
    try {
      await machine.fs.remove(path, { recursive: flags.recursive });
    } catch (error) {
      if (flags.force && (error as { code?: string }).code === 'PATH_NOT_FOUND') return this.emit({ ok: true, path, removed: false });
      throw error;
    }
    this.emit({ ok: true, path, removed: true });
  }
}
