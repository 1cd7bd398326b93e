import { Flags } from '@oclif/core';
import { resolve } from 'node:path';
import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand } from '../../baseCommand.js';
import { daemonFiles, tetherPaths } from '../../paths.js';
import { storeStatus } from '../../storeStatus.js';

export default class DaemonStatus extends TetherCommand {
  static override summary = 'Show whether the local daemon runs, and how it is.';
  static override description =
    'Does not start it. Prints {"running":true,"ok","pid","version","uptime_ms","active","store","data_dir","socket","log"} (active: executions running or queued; ok false with store {"ok":false,"code","message","dir","since","retries","hint"} while the event store cannot write, e.g. DISK_FULL), or {"running":false,…} with the same paths.';
  static override examples = [{ description: 'Is the local daemon up?', command: '<%= config.bin %> daemon status' }];
  static override flags = {
    'data-dir': Flags.string({ description: 'the daemon state directory (default: $XDG_STATE_HOME/tether)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonStatus);
    this.useConfig(flags.config);
    const { localDaemonStatus } = await loadRuntime();
    const files = daemonFiles(resolve(flags['data-dir'] ?? tetherPaths().stateDir));
    const where = { data_dir: files.dataDir, socket: files.socket, log: files.log };
    const status = await localDaemonStatus(files);
    if (!status.running) return this.emit({ running: false, ...where });
    const health = status.health;
    this.emit({
      running: true,
      ok: health.ok,
      pid: status.info.pid,
      version: status.info.version,
      uptime_ms: health.uptimeMs,
      active: health.active,
      ...(health.store ? { store: storeStatus(health.store) } : {}),
      ...where,
    });
  }
}

