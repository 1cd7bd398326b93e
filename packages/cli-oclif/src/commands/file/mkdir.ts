import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { machinePath, parseMode } from '../../fileJson.js';

export default class FileMkdir extends TetherCommand {
  static override summary = 'Create a directory on a machine.';
  static override description =
    'Creates the directory and its missing parents (like mkdir -p; an existing directory is fine). --no-parents creates only the last one. Prints {"ok":true,"path"}.';
  static override examples = [{ description: 'Create a run directory', command: '<%= config.bin %> file mkdir --machine gpu1 --path /data/runs/42/ckpt' }];
  static override flags = {
    machine: machineFlag,
    path: Flags.string({ description: 'the directory on the machine', required: true }),
    parents: Flags.boolean({ description: 'create missing parents too', default: true, allowNo: true }),
    mode: Flags.string({ description: 'permission bits, octal (0755)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(FileMkdir);
    this.useConfig(flags.config);
    const mode = flags.mode === undefined ? undefined : parseMode(flags.mode);
    if (flags.mode !== undefined && mode === undefined) throw new CliError('INVALID_ARGUMENT', `--mode: expected octal permission bits like 0755, got "${flags.mode}"`);
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const path = machinePath(flags.path, isLocal);
    await machine.fs.mkdir(path, { recursive: flags.parents, ...(mode !== undefined ? { mode } : {}) });
    this.emit({ ok: true, path });
  }
}
