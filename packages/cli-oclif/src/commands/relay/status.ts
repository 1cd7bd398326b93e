import { Flags } from '@oclif/core';
import { TetherCommand } from '../../baseCommand.js';
import { relayAdminFor } from '../../relayFiles.js';
import { relayTargetFlags } from '../../relayFlags.js';

export default class RelayStatus extends TetherCommand {
  static override summary = 'List the environments of a relay, online and offline.';
  static override description =
    'Prints {"environments":[{"name","online","last_seen","sessions"}]}: every enrolled (not revoked) environment, whether its daemon holds a registration now, when it was last heard from (null: never), and the client sessions paired with it.';
  static override examples = [
    { description: 'Environments of the relay on this machine', command: '<%= config.bin %> relay status' },
    { description: 'Only those online, of a relay elsewhere', command: '<%= config.bin %> relay status --status online --relay wss://relay.example:8443 --admin-token-file admin-token' },
  ];
  static override flags = {
    status: Flags.string({ description: 'only environments online, or offline', options: ['online', 'offline'] }),
    ...relayTargetFlags,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(RelayStatus);
    this.useConfig(flags.config);
    const admin = await relayAdminFor(flags);
    this.emit({ environments: await admin.status(flags.status as 'online' | 'offline' | undefined) });
  }
}
