import { Flags } from '@oclif/core';
import { resolve } from 'node:path';
import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand } from '../../baseCommand.js';
import { daemonFiles, tetherPaths } from '../../paths.js';
import { CliError } from '../../cliError.js';
import { parseDuration } from '../../duration.js';

export default class DaemonStop extends TetherCommand {
  static override summary = 'Stop the local daemon.';
  static override description =
    'Sends SIGTERM to the daemon (found by asking it, or by its pid file) and waits for it to exit. Running executions keep running under their supervisors; the next daemon (started by the next command that needs "local", possibly a newer build) re-attaches to them and records what they wrote meanwhile. With --cancel-running (SIGUSR2) they are cancelled instead (TERM, then KILL) and recorded as such. Prints {"ok":true,"stopped":true,"pid","cancel_running"}, or {"ok":true,"stopped":false,"reason"} when none runs.';
  static override examples = [
    { description: 'Stop it (e.g. after upgrading tether); executions keep running', command: '<%= config.bin %> daemon stop' },
    { description: 'Stop it and cancel what it runs', command: '<%= config.bin %> daemon stop --cancel-running' },
  ];
  static override flags = {
    'data-dir': Flags.string({ description: 'the daemon state directory (default: $XDG_STATE_HOME/tether)' }),
    timeout: Flags.string({ description: 'how long to wait for it to exit', default: '20s' }),
    'cancel-running': Flags.boolean({ description: 'cancel the running executions instead of leaving them to the next daemon', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonStop);
    this.useConfig(flags.config);
    const timeoutMs = parseDuration(flags.timeout, 'timeout');
    const { localDaemonStatus, pidFromFile, isAlive } = await loadRuntime();
    const files = daemonFiles(resolve(flags['data-dir'] ?? tetherPaths().stateDir));
    // The daemon's own answer beats the pid file (which a crash may have left behind).
    const status = await localDaemonStatus(files).catch(() => ({ running: false as const }));
    const pid = status.running ? status.info.pid : await pidFromFile(files);
    if (pid === undefined) return this.emit({ ok: true, stopped: false, reason: 'not running' });
    process.kill(pid, flags['cancel-running'] ? 'SIGUSR2' : 'SIGTERM');
    const deadline = Date.now() + timeoutMs;
    while (isAlive(pid)) {
      if (Date.now() > deadline) {
        throw new CliError('TIMEOUT', `the daemon (pid ${pid}) did not exit within ${flags.timeout}`, {
          hint: `see ${files.log}; if it hangs, kill -9 ${pid}`,
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.emit({ ok: true, stopped: true, pid, cancel_running: flags['cancel-running'] });
  }
}
