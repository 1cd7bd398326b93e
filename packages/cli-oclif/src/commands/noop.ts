import { Command } from '@oclif/core';

/** Does nothing: the floor of the start-up benchmark (oclif and the CLI's config, no tether code). */
export default class Noop extends Command {
  static override hidden = true;
  static override summary = 'Do nothing (start-up benchmark).';

  async run(): Promise<void> {
    await this.parse(Noop);
  }
}
