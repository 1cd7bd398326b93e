import { Flags } from '@oclif/core';
import { TetherCommand } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';
import { checkMachine, statusJson, type MachineStatus } from '../../machineStatus.js';
import { formatTable } from '../../output.js';

export default class MachineList extends TetherCommand {
  static override summary = 'List the machines and check each one.';
  static override description =
    'Checks local and every configured machine, --parallel at a time (machine ls is the same), and prints {"total","ssh_ok","daemon_ok","failed","checked_at","machines":[Status…]} (counts of machines whose SSH / daemon answered, and of those that did not), each Status as machine check prints it. --format table prints a table for people.';
  static override examples = [
    { description: 'Check every machine', command: '<%= config.bin %> machine list' },
    { description: 'As a table, 8 at a time, 3 seconds each', command: '<%= config.bin %> machine list --format table --parallel 8 --timeout 3s' },
  ];
  static override aliases = ['machine:ls'];
  static override flags = {
    json: Flags.boolean({ description: 'JSON output (the default; accepted as codex-remote takes it)', default: false, exclusive: ['format'] }),
    parallel: Flags.integer({ description: 'machines checked at once', default: 4, min: 1, max: 64 }),
    timeout: Flags.string({ description: 'give up on a machine after this long', default: '8s' }),
    format: Flags.string({ description: 'output format', options: ['json', 'table'], default: 'json' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineList);
    this.useConfig(flags.config);
    const timeoutMs = parseDuration(flags.timeout, 'timeout');
    const machines = await this.machines();
    const names = await machines.names();
    // A machine the config cannot describe (unknown transport or fields) is an error, not a status.
    for (const name of names) await machines.validate(name);
    const checkedAt = new Date().toISOString();
    const statuses: MachineStatus[] = new Array(names.length);
    let next = 0;
    this.progress(`checking ${names.length} machine${names.length === 1 ? '' : 's'}`);
    await Promise.all(
      Array.from({ length: Math.min(flags.parallel, names.length) }, async () => {
        for (let i = next++; i < names.length; i = next++) statuses[i] = await checkMachine(machines, names[i]!, timeoutMs);
      }),
    );
    this.stopProgress();
    if (flags.format === 'table') {
      process.stdout.write(
        formatTable(
          ['NAME', 'TRANSPORT', 'SSH', 'DAEMON', 'LATENCY', 'VERSION', 'ERROR'],
          statuses.map((s) => [s.name, s.transport, s.ssh_ok === null ? '-' : s.ssh_ok ? 'ok' : 'fail', s.daemon_ok ? 'ok' : 'fail', s.latency_ms === null ? null : `${s.latency_ms}ms`, s.daemon_version, s.error]),
        ),
      );
      return;
    }
    this.emit({
      total: statuses.length,
      ssh_ok: statuses.filter((s) => s.ssh_ok === true).length,
      daemon_ok: statuses.filter((s) => s.daemon_ok).length,
      failed: statuses.filter((s) => !s.daemon_ok).length,
      checked_at: checkedAt,
      machines: statuses.map(statusJson),
    });
  }
}
