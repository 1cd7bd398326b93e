import { Flags } from '@oclif/core';
import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { formatTable } from '../../output.js';

export default class ExecList extends TetherCommand {
  static override summary = 'List executions, newest first.';
  static override description = 'Prints {"execs":[result…]}, each as exec result prints it. --format table prints a table for people.';
  static override examples = [
    { description: 'What runs on this machine?', command: '<%= config.bin %> exec list --status running' },
    { description: 'The last 5 on gpu1, as a table', command: '<%= config.bin %> exec list --machine gpu1 --limit 5 --format table' },
  ];
  static override flags = {
    machine: machineFlag,
    status: Flags.string({ description: 'only executions in this state', options: ['queued', 'running', 'finished'] }),
    limit: Flags.integer({ description: 'at most this many', min: 1, max: 1000, default: 50 }),
    format: Flags.string({ description: 'output format', options: ['json', 'table'], default: 'json' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecList);
    this.useConfig(flags.config);
    const { machine, name } = await this.openMachine(flags.machine);
    const { resultJson } = await loadRuntime();
    const status = flags.status as 'queued' | 'running' | 'finished' | undefined;
    const page = await machine.exec.list({ limit: flags.limit, ...(status ? { status } : {}) });
    const cwd = (await machine.info()).cwd;
    const execs = page.items.map((state) => resultJson(state, name, cwd));
    if (flags.format === 'table') {
      process.stdout.write(
        formatTable(
          ['EXEC_ID', 'STATUS', 'END', 'EXIT', 'STARTED', 'DURATION', 'CMD'],
          execs.map((e) => [e.exec_id, e.status, e.end_reason, e.exit_code, e.started_at, `${(e.duration_ms / 1000).toFixed(1)}s`, e.cmd.replace(/\s+/g, ' ').slice(0, 60)]),
        ),
      );
      return;
    }
    this.emit({ execs });
  }
}
