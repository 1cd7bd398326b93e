import { Command } from '@oclif/core';
import { writeJson } from '../output.js';

/** `tether commands`: every command, as JSON, for agents that discover what the CLI offers. */
export default class Commands extends Command {
  static override summary = 'List the commands, as JSON.';
  static override description = 'Prints {"commands":[{"id","summary","plugin","aliases"}]}: every command of tether and of its installed plugins (ids with spaces, as typed), hidden ones left out.';
  static override examples = [{ description: 'What can this CLI do?', command: '<%= config.bin %> commands' }];

  async run(): Promise<void> {
    await this.parse(Commands);
    const commands = this.config.commands
      .filter((c) => !c.hidden)
      .map((c) => ({ id: c.id.replaceAll(':', ' '), summary: c.summary ?? c.description?.split('\n')[0] ?? null, plugin: c.pluginName ?? null, aliases: c.aliases.map((a) => a.replaceAll(':', ' ')) }))
      .sort((a, b) => a.id.localeCompare(b.id));
    writeJson({ commands });
  }
}
