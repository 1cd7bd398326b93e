import { Flags } from '@oclif/core';
import type { LogLine, OutputStream, RemoteMachine } from '@tether/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { parseTime } from '../../duration.js';
import { LineSplitter } from '../../lineSplitter.js';

export default class ExecLogs extends TetherCommand {
  static override summary = "Print an execution's output as JSON lines.";
  static override description = `Prints {"type":"log","stream","line","seq"} per line, oldest first. With no --tail/--tail-lines/--since/--until/--after-seq it prints the last 2000 bytes of stdout. Tails are read from the end of the record (a short tail of a huge output is cheap) and are returned whole: --tail-lines N gives N lines (up to 1000000), --tail N the lines that start in the last N bytes (a line cut by the boundary is dropped). --since/--until/--after-seq without a tail stream every line of that range, newest included, nothing capped; with a tail they bound it (--since 1h --tail-lines 100: the newest 100 lines of the last hour). --full prints all of it from the start (read in pages, whatever its size); --format text prints the lines alone (no JSON), for reading. seq is the event that holds the line's last byte: pass the last one to exec watch --after-seq to continue.`;
  static override examples = [
    { description: 'The last 2000 bytes of stdout', command: '<%= config.bin %> exec logs --id train-42' },
    { description: 'Why did it fail? The end of stderr', command: '<%= config.bin %> exec logs --id train-42 --stream stderr --tail 2000' },
    { description: 'The whole output, as plain text', command: '<%= config.bin %> exec logs --id train-42 --stream both --full --format text' },
    { description: 'The last 50 lines of both streams from the past 10 minutes', command: '<%= config.bin %> exec logs --machine gpu1 --id train-42 --stream both --tail-lines 50 --since 10m' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
    stream: Flags.string({ description: 'which output', options: ['stdout', 'stderr', 'both'], default: 'stdout' }),
    tail: Flags.integer({ description: 'the last N bytes (from the first line that starts in them: a line cut by the boundary is dropped)', min: 0 }),
    'tail-lines': Flags.integer({ description: 'the last N lines (at most 1000000)', min: 0, max: 1_000_000 }),
    since: Flags.string({ description: 'only output from this time on: RFC 3339, or a duration ago (10m)' }),
    until: Flags.string({ description: 'only output before this time: RFC 3339, or a duration ago' }),
    'after-seq': Flags.integer({ description: 'only output after this seq', min: 0 }),
    full: Flags.boolean({ description: 'all of the output from the start (or --after-seq), not a tail', exclusive: ['tail', 'tail-lines'] }),
    format: Flags.string({
      description: 'jsonl (or json): one {"type":"log",…} a line, the default when stdout is not a terminal; text: the lines themselves, colours kept, stderr lines on stderr, the default on a terminal',
      options: ['jsonl', 'json', 'text'],
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecLogs);
    this.useConfig(flags.config);
    this.useFormat(flags.format);
    const since = flags.since === undefined ? undefined : parseTime(flags.since, 'since');
    const until = flags.until === undefined ? undefined : parseTime(flags.until, 'until');
    const { machine } = await this.openMachine(flags.machine);
    const streams: OutputStream[] = flags.stream === 'both' ? ['stdout', 'stderr', 'pty'] : flags.stream === 'stderr' ? ['stderr'] : ['stdout', 'pty'];
    // A line longer than the daemon's limit (64 KiB) comes back as its end, with "cut": true.
    const print = (stream: string, line: string, seq: number, cut?: boolean) =>
      this.emitLine({ type: 'log', stream: stream === 'stderr' ? 'stderr' : 'stdout', line, seq, ...(cut ? { cut: true } : {}) });
    if (flags.full) {
      const { fullLog } = await import('../../fullLog.js');
      return fullLog(machine, flags.id, { streams: new Set(streams), afterSeq: flags['after-seq'] ?? 0, since, until }, (r) => print(r.stream, r.line, r.seq));
    }
    const bounds = {
      ...(flags['after-seq'] !== undefined ? { afterSeq: flags['after-seq'] } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
    };
    const tailed = flags.tail !== undefined || flags['tail-lines'] !== undefined;
    if (!tailed && Object.keys(bounds).length > 0) {
      await this.#streamRange(machine, flags.id, new Set(streams), bounds, print);
      return;
    }
    const lines = await tail(machine, flags.id, streams, { bytes: flags.tail ?? (tailed ? undefined : DEFAULT_TAIL_BYTES), lines: flags['tail-lines'], ...bounds });
    for (const { stream, line, seq, cut } of lines) print(stream, line, seq, cut);
  }

  /**
   * Every line in a range (--since/--until/--after-seq without a tail), streamed: pages of
   * events (bounded by bytes) are cut into lines and printed as they come, up to the end the
   * execution had when the command started. Nothing is capped, so the newest lines are there.
   */
  async #streamRange(machine: RemoteMachine, id: string, streams: ReadonlySet<OutputStream>, bounds: { afterSeq?: number; since?: number; until?: number }, print: (stream: string, line: string, seq: number) => unknown): Promise<void> {
    const splitter = new LineSplitter();
    const { lastSeq: end } = await machine.exec.get(id);
    let after = bounds.afterSeq ?? 0;
    while (after < end) {
      const { events } = await machine.exec.read(id, { afterSeq: after, limit: 1000, maxBytes: PAGE_BYTES });
      if (events.length === 0) break;
      for (const event of events) {
        if (event.seq > end) break;
        after = event.seq;
        if (event.type !== 'OutputProduced' || !streams.has(event.data.stream)) continue;
        if (bounds.since !== undefined && event.ts < bounds.since) continue;
        if (bounds.until !== undefined && event.ts >= bounds.until) continue;
        for (const record of splitter.push(event.data.stream, event.data.data, event.seq)) print(record.stream, record.line, record.seq);
      }
      if (events.at(-1)!.seq >= end) break;
    }
    for (const record of splitter.flush()) print(record.stream, record.line, record.seq);
  }
}

/** The default tail when no selector is given: the last 2000 bytes (of stdout), as codex-remote. */
const DEFAULT_TAIL_BYTES = 2000;
/** Most lines one tail returns (the protocol's limit on exec/logs). */
const MAX_TAIL_LINES = 1_000_000;
/** Bytes of events per page of a range read. */
const PAGE_BYTES = 4 * 1024 * 1024;

/**
 * The tail the flags ask for, all of it (up to MAX_TAIL_LINES lines). A byte tail starts at a
 * line: its first line, cut by the byte boundary, is dropped (as codex-remote does), unless it
 * is whole — the tail starts the output or a line.
 */
async function tail(
  machine: RemoteMachine,
  id: string,
  streams: OutputStream[],
  options: { bytes?: number; lines?: number; afterSeq?: number; since?: number; until?: number },
): Promise<readonly LogLine[]> {
  const { bytes, lines, ...bounds } = options;
  const ask = (tailBytes: number | undefined, beforeSeq?: number) =>
    machine.exec.logs(id, {
      streams,
      ...bounds,
      ...(beforeSeq !== undefined ? { beforeSeq } : {}),
      ...(tailBytes !== undefined ? { tailBytes } : {}),
      ...(lines !== undefined ? { tailLines: lines } : {}),
      maxLines: Math.max(1, Math.min(lines ?? MAX_TAIL_LINES, MAX_TAIL_LINES)),
    });
  if (bytes === undefined) return (await ask(undefined)).lines;
  if (bytes === 0) return [];
  // One byte more tells whether the tail's first line is whole: the byte before it is a newline
  // (one more, empty, line), there is nothing before it (the same lines), or it was cut.
  const exact = await ask(bytes);
  // The same end for both: a running command may have printed more in between.
  const wider = await ask(bytes + 1, exact.lastSeq + 1);
  const whole = wider.lines.length === exact.lines.length + 1 || (wider.lines.length === exact.lines.length && wider.lines[0]?.line === exact.lines[0]?.line);
  return whole ? exact.lines : exact.lines.slice(1);
}
