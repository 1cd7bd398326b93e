import { Flags } from '@oclif/core';
import { open } from 'node:fs/promises';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { relayAdminFor } from '../../relayFiles.js';
import { relayTargetFlags, subjectOf, subjectFlags } from '../../relayFlags.js';

export default class RelayEnroll extends TetherCommand {
  static override summary = 'Issue a relay credential for a daemon (environment) or a client.';
  static override description = `Prints {"kind","name","credential","rotated"} with the new credential: the only time it is shown (the relay keeps its hash). With --out FILE it is written to FILE (mode 0600, never over an existing file) instead, and {"kind","name","credential_file","rotated"} is printed.

An environment's credential goes to the daemon's host (tether daemon serve --relay URL --environment NAME reads it from <data-dir>/relay-credential); a client's goes into its machine config as relay_token_file. Enrolling a name that is enrolled needs --rotate, which replaces the credential and disconnects its holder.`;
  static override examples = [
    { description: 'Enrol the daemon of gpu1, writing its credential to a file', command: '<%= config.bin %> relay enroll --environment gpu1 --out gpu1.relay-credential' },
    { description: 'Enrol a client', command: '<%= config.bin %> relay enroll --client laptop' },
  ];
  static override flags = {
    ...subjectFlags,
    rotate: Flags.boolean({ description: 'replace the credential of an enrolled name (its holder is disconnected)' }),
    out: Flags.string({ description: 'write the credential to this file (mode 0600) instead of printing it' }),
    ...relayTargetFlags,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(RelayEnroll);
    this.useConfig(flags.config);
    const { kind, name } = subjectOf(flags);
    let file;
    if (flags.out !== undefined) {
      try {
        file = await open(flags.out, 'wx', 0o600);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new CliError(code === 'EEXIST' ? 'PATH_EXISTS' : 'PERMISSION_DENIED', `cannot create ${flags.out} (${code ?? 'error'})`, {
          hint: code === 'EEXIST' ? 'the credential is written only to a new file: choose another path or remove that one' : 'check the directory and its permissions',
          cause: error,
        });
      }
    }
    try {
      const admin = await relayAdminFor(flags);
      const enrolled = await admin.enroll(kind, name, { rotate: flags.rotate });
      if (file) {
        await file.writeFile(`${enrolled.credential}\n`);
        await file.sync();
        this.emit({ kind, name, credential_file: flags.out, rotated: enrolled.rotated });
      } else this.emit({ kind, name, credential: enrolled.credential, rotated: enrolled.rotated });
    } catch (error) {
      if (file) {
        await file.close();
        file = undefined;
        const { rm } = await import('node:fs/promises');
        await rm(flags.out!, { force: true });
      }
      throw error;
    } finally {
      await file?.close();
    }
  }
}
