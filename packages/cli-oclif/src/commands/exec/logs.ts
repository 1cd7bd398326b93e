import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { parseTime } from '../../duration.js';
import { textFormatFlag } from '../../execFlags.js';

export default class ExecLogs extends TetherCommand {
  static override summary = "Print an execution's output as JSON lines.";
  static override description = `Prints {"type":"log","stream","line","seq"} per line, oldest first. With no --tail/--tail-lines/--since/--after-seq it prints the last 2000 bytes of stdout. Tails are read from the end of the record (a short tail of a huge output is cheap). seq is the event that holds the line's last byte: pass the last one to exec watch --after-seq to continue.`;
  static override examples = [
    { description: 'The last 2000 bytes of stdout', command: '<%= config.bin %> exec logs --id train-42' },
    { description: 'Why did it fail? The end of stderr', command: '<%= config.bin %> exec logs --id train-42 --stream stderr --tail 2000' },
    { description: 'The last 50 lines of both streams from the past 10 minutes', command: '<%= config.bin %> exec logs --machine gpu1 --id train-42 --stream both --tail-lines 50 --since 10m' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
    stream: Flags.string({ description: 'which output', options: ['stdout', 'stderr', 'both'], default: 'stdout' }),
    tail: Flags.integer({ description: 'the last N bytes', min: 0 }),
    'tail-lines': Flags.integer({ description: 'the last N lines', min: 0 }),
    since: Flags.string({ description: 'only output from this time on: RFC 3339, or a duration ago (10m)' }),
    until: Flags.string({ description: 'only output before this time: RFC 3339, or a duration ago' }),
    'after-seq': Flags.integer({ description: 'only output after this seq', min: 0 }),
    format: textFormatFlag,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecLogs);
    this.useConfig(flags.config);
    this.useFormat(flags.format);
    const since = flags.since === undefined ? undefined : parseTime(flags.since, 'since');
    const until = flags.until === undefined ? undefined : parseTime(flags.until, 'until');
    const { machine } = await this.openMachine(flags.machine);
    const streams = flags.stream === 'both' ? (['stdout', 'stderr', 'pty'] as const) : flags.stream === 'stderr' ? (['stderr'] as const) : (['stdout', 'pty'] as const);
    const { lines } = await machine.exec.logs(flags.id, {
      streams: [...streams],
      ...(flags.tail !== undefined ? { tailBytes: flags.tail } : {}),
      ...(flags['tail-lines'] !== undefined ? { tailLines: flags['tail-lines'] } : {}),
      ...(flags['after-seq'] !== undefined ? { afterSeq: flags['after-seq'] } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
    });
    for (const { stream, line, seq } of lines) this.emitLine({ type: 'log', stream: stream === 'stderr' ? 'stderr' : 'stdout', line, seq });
  }
}
