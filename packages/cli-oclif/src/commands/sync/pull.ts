import { SyncCommand, syncFlags } from '../../syncCommand.js';

export default class SyncPull extends SyncCommand {
  static override summary = 'Copy a directory (or file) from a machine to here, fetching only what differs.';
  static override description =
    'Makes the local --dst a copy of --src on the machine: a directory\'s contents are mirrored into --dst (created with its parents if missing), as rsync src/ dst/ does; a file is copied to --dst (or into it, when --dst is a directory). Only files that are missing or differ are fetched (--compare), each written atomically with its permission bits; symlinks and special files are skipped and listed. No rsync needed on either side. Prints {"ok","files","bytes","deleted","skipped"}; a progress bar goes to stderr when stderr is a terminal. When something could not be synced, ok is false and the command exits 1 after printing.';
  static override examples = [
    { description: 'Fetch the results of a run', command: '<%= config.bin %> sync pull --machine gpu1 --src ~/work/proj/out --dst ./out' },
    { description: 'Only checkpoints, compared by size (fast for large files)', command: '<%= config.bin %> sync pull --machine gpu1 --src /data/ckpt --dst ./ckpt --exclude "*.tmp" --compare size' },
  ];
  static override flags = syncFlags;

  async run(): Promise<void> {
    const { flags } = await this.parse(SyncPull);
    await this.sync('pull', flags);
  }
}
