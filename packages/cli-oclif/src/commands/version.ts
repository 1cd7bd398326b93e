import { Command } from '@oclif/core';
import { writeJson } from '../output.js';

/** `tether version`: the CLI's version and where it runs, as JSON (`--version` prints the same line oclif prints). */
export default class Version extends Command {
  static override summary = 'Print the version, as JSON.';
  static override description = 'Prints {"version","node","platform","arch","plugins":[{"name","version","type"}]}: this CLI, the Node.js running it, and the plugins installed into it.';
  static override examples = [{ description: 'Which tether is this?', command: '<%= config.bin %> version' }];

  async run(): Promise<void> {
    await this.parse(Version);
    writeJson({
      version: this.config.version,
      node: process.versions.node,
      platform: process.platform,
      arch: process.arch,
      plugins: this.config.getPluginsList().filter((p) => p.name !== this.config.name).map((p) => ({ name: p.name, version: p.version, type: p.type })),
    });
  }
}
