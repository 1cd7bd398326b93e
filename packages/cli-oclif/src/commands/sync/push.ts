import { SyncCommand, syncFlags } from '../../syncCommand.js';

export default class SyncPush extends SyncCommand {
  static override summary = 'Copy a local directory (or file) to a machine, sending only what differs.';
  static override description =
    'Makes --dst on the machine a copy of the local --src: a directory\'s contents are mirrored into --dst (created with its parents if missing), as rsync src/ dst/ does; a file is copied to --dst (or into it, when --dst is a directory). Only files that are missing or differ are sent (--compare), each written atomically with its permission bits; symlinks and special files are skipped and listed. Works over any transport, with nothing installed on the machine but its daemon (no rsync). Prints {"ok","files","bytes","deleted","skipped"}: files and bytes written, entries removed, and what was skipped and why. A progress bar goes to stderr when stderr is a terminal. When something could not be synced (it changed or vanished meanwhile, a conflict), ok is false and the command exits 1 after printing.';
  static override examples = [
    { description: 'Send a project, leaving build output and dependencies out', command: '<%= config.bin %> sync push --machine gpu1 --src . --dst ~/work/proj --exclude node_modules --exclude .git --exclude "*.pyc"' },
    { description: 'Mirror exactly (remove what was deleted locally)', command: '<%= config.bin %> sync push --machine gpu1 --src ./data --dst /data/run1 --delete' },
  ];
  static override flags = syncFlags;

  async run(): Promise<void> {
    const { flags } = await this.parse(SyncPush);
    await this.sync('push', flags);
  }
}
