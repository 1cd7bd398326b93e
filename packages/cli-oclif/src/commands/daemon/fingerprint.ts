import { Flags } from '@oclif/core';
import { resolve } from 'node:path';
import { TetherCommand } from '../../baseCommand.js';
import { daemonFiles, tetherPaths } from '../../paths.js';

export default class DaemonFingerprint extends TetherCommand {
  static override summary = "Print the fingerprint of this daemon's identity, for clients that reach it through a relay.";
  static override description =
    'Prints {"fingerprint","cert_file","created"}. Clients pin it in their machine config (fingerprint: SHA256:…, or tether machine trust --machine M --fingerprint …) and refuse a daemon that presents another one. The identity (a self-signed certificate and its key, mode 0600, in the data dir) is made on first use.';
  static override examples = [{ description: "This machine's daemon identity", command: '<%= config.bin %> daemon fingerprint' }];
  static override flags = {
    'data-dir': Flags.string({ description: 'the daemon state directory (default: $XDG_STATE_HOME/tether)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonFingerprint);
    this.useConfig(flags.config);
    const files = daemonFiles(resolve(flags['data-dir'] ?? tetherPaths().stateDir));
    const { loadOrCreateIdentity } = await import('@tether/transport-cloud');
    const identity = await loadOrCreateIdentity(files.dataDir);
    this.emit({ fingerprint: identity.fingerprint, cert_file: identity.certFile, created: identity.created });
  }
}
