import { Flags } from '@oclif/core';
import { TetherCommand } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';
import { statusJson } from '../../machineStatus.js';

export default class MachineUp extends TetherCommand {
  static override summary = "Start a machine's daemon over SSH if it is not running, and wait until it answers.";
  static override description = `For machines reached over SSH. Prints {"ok","phase","stage","message","hint"?,"before","after"} (before and after are Status objects, as machine check prints them; stage is phase under codex-remote's name); phase is where it ended:
- precheck: the daemon already answers (ok, nothing started), or SSH itself fails (with the transport's hint, e.g. the ssh-keyscan command for an unknown host key);
- start: the daemon command could not be started (e.g. tether or node is not on the PATH of non-interactive SSH sessions);
- verify: the daemon was started; ok once it answers a health check, else why not, with the end of its output.

The daemon command is the machine's daemon_cmd, default "tether daemon serve"; a "daemon serve" without --listen gets --listen 127.0.0.1:<daemon_port>. It runs detached (setsid nohup), its output appended to ~/.local/state/tether/daemon-up.log on the machine. If a daemon started for "local" on that machine (Unix socket only) already holds the data dir, the new "daemon serve" serves that daemon on the TCP port instead of failing. Exits non-zero (with the error on stderr) when not ok.`;
  static override examples = [
    { description: 'Make sure gpu1 serves', command: '<%= config.bin %> machine up --machine gpu1' },
    { description: 'Allow a slow first start', command: '<%= config.bin %> machine up --machine gpu1 --timeout 2m' },
  ];
  static override flags = {
    machine: Flags.string({ char: 'm', description: 'the machine (one reached over SSH)', required: true }),
    timeout: Flags.string({ description: 'how long to wait for a started daemon to answer', default: '30s' }),
    'check-timeout': Flags.string({ description: 'how long each health check may take', default: '8s' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineUp);
    this.useConfig(flags.config);
    this.errorContext.machine = flags.machine;
    this.errorContext.transport = 'ssh';
    const startTimeoutMs = parseDuration(flags.timeout, 'timeout');
    const checkTimeoutMs = parseDuration(flags['check-timeout'], 'check-timeout');
    const { machineUp } = await import('../../machineUp.js');
    const result = await machineUp(await this.machines(), flags.machine, { startTimeoutMs, checkTimeoutMs, onProgress: (message) => this.progress(message) });
    this.stopProgress(result.ok ? 'done' : 'failed');
    this.emit({
      ok: result.ok,
      phase: result.phase,
      // codex-remote's name for the same field; skills read `stage`.
      stage: result.phase,
      message: result.message,
      ...(result.hint === undefined ? {} : { hint: result.hint }),
      before: statusJson(result.before),
      after: statusJson(result.after),
    });
    if (result.failure) throw result.failure;
  }
}
