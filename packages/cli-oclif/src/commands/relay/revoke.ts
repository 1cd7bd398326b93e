import { TetherCommand } from '../../baseCommand.js';
import { relayAdminFor } from '../../relayFiles.js';
import { relayTargetFlags, subjectOf, subjectFlags } from '../../relayFlags.js';

export default class RelayRevoke extends TetherCommand {
  static override summary = "Revoke a daemon's or a client's relay credential.";
  static override description =
    'Takes effect at once: the environment\'s registration and every session through it (or the client\'s sessions) are closed, and the credential is refused from then on (a revoked daemon says so in its log and stops registering). Prints {"kind","name","revoked","disconnected"}; revoked is false when the name was not enrolled.';
  static override examples = [{ description: 'Cut off gpu1', command: '<%= config.bin %> relay revoke --environment gpu1' }];
  static override flags = { ...subjectFlags, ...relayTargetFlags };

  async run(): Promise<void> {
    const { flags } = await this.parse(RelayRevoke);
    this.useConfig(flags.config);
    const { kind, name } = subjectOf(flags);
    const admin = await relayAdminFor(flags);
    this.emit(await admin.revoke(kind, name));
  }
}
