import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { entryJson, machinePath } from '../../fileJson.js';

export default class FileLs extends TetherCommand {
  static override summary = 'List a directory on a machine.';
  static override description = 'Prints {"ok","path","entries":[{"name","path","type","size","mode","mtime","link_target"?}]}; type is file, directory, symlink…; mode is octal; mtime is RFC 3339.';
  static override examples = [
    { description: 'List a directory', command: '<%= config.bin %> file ls --machine gpu1 --path /data/run' },
    { description: 'The current directory on this machine', command: '<%= config.bin %> file ls' },
  ];
  static override flags = {
    machine: machineFlag,
    path: Flags.string({ description: 'the directory (default: the current directory on local, the home directory elsewhere)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(FileLs);
    this.useConfig(flags.config);
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const path = machinePath(flags.path ?? '.', isLocal);
    const entries = await machine.fs.list(path);
    this.emit({ ok: true, path, entries: entries.map(entryJson) });
  }
}
