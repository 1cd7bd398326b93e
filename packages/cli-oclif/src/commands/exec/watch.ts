import { Flags } from '@oclif/core';
import { loadRuntime } from '../../runtimeLoader.js';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { parseDuration } from '../../duration.js';

export default class ExecWatch extends TetherCommand {
  static override summary = 'Follow executions from a durable cursor, printing only what is worth acting on; exit with the exit code.';
  static override description = `Prints {"type":"log","stream","line","seq"} for each line after --after-seq (with no --after-seq: from each execution's current end, as codex-remote's watch does; --full replays from the start), live as they come, then {"type":"summary","exec_id","status","end_reason","exit_code","duration_ms","last_seq","artifacts"?} (artifacts: the .codex/artifacts.json the command left, as exec result shows it).

last_seq is the cursor: "exec watch --after-seq <last_seq>" continues exactly where this one stopped, with nothing missed and nothing twice. It stops when the execution finishes (and exits with its exit code, like exec run), when a line matches --until-pattern, after --max-events lines, after --idle without output (an {"type":"idle","exec_id","idle_ms","last_seq"} line, exit 125), or after --timeout (exit 0 while it still runs). It stops between events, so it may print a few lines past --max-events, and a line cut by the stop is printed in two parts across two watches.

Monitors: --on-pattern RE (repeatable) prints only the lines that match one of them (and --until-pattern lines). Several --id, or --all-running (every running or queued execution of the machine), are watched at once: lines then carry "exec_id", each execution gets its summary when it finishes, and the watch ends when any (--until any) or all (--until all, the default) have finished; it exits with the first one's code (any) or the first non-zero code (all).`;
  static override examples = [
    { description: 'Follow what comes from now on, to the end', command: '<%= config.bin %> exec watch --id train-42' },
    { description: 'Replay everything, then follow', command: '<%= config.bin %> exec watch --id train-42 --full' },
    { description: 'Wait until the server says it is ready', command: "<%= config.bin %> exec watch --id web-1 --until-pattern 'listening on'" },
    { description: 'Read 100 lines at a time, resuming from the cursor', command: '<%= config.bin %> exec watch --id train-42 --after-seq 118 --max-events 100' },
    { description: 'Only errors, or a stall of 10 minutes, or the end', command: "<%= config.bin %> exec watch --id train-42 --on-pattern Traceback --on-pattern 'CUDA out of memory' --idle 10m" },
    { description: 'Until every running execution has finished', command: '<%= config.bin %> exec watch --all-running --until all --on-pattern ERROR' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id); repeatable', multiple: true }),
    'all-running': Flags.boolean({ description: 'watch every running or queued execution of the machine', exclusive: ['id'] }),
    until: Flags.string({ description: 'with several executions: stop when any or all have finished', options: ['any', 'all'], default: 'all' }),
    stream: Flags.string({ description: 'which output', options: ['stdout', 'stderr', 'both'], default: 'both' }),
    'after-seq': Flags.integer({ description: 'start after this seq (a last_seq printed before; one --id only); default: the current end', min: 0, exclusive: ['full'] }),
    full: Flags.boolean({ description: 'replay the output from the start (the same as --after-seq 0)', default: false }),
    'on-pattern': Flags.string({ description: 'print only lines matching this regular expression; repeatable', multiple: true }),
    'until-pattern': Flags.string({ description: 'stop after a line matching this regular expression' }),
    idle: Flags.string({ description: 'stop with an idle event (exit 125) when a running execution prints nothing for this long (30s, 10m)' }),
    'max-events': Flags.integer({ description: 'stop after this many lines', min: 1 }),
    timeout: Flags.string({ description: 'stop watching after this long (500ms, 10s, 5m); the execution goes on' }),
    // codex-remote's watch polls (--poll, fetching --tail bytes each time); tether's is pushed every
    // event from a durable cursor, so both are accepted and change nothing.
    poll: Flags.string({ description: 'accepted for codex-remote compatibility; no effect (lines are pushed as they come, not polled)' }),
    tail: Flags.integer({ description: 'accepted for codex-remote compatibility; no effect (nothing is re-fetched)', min: 0 }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecWatch);
    this.useConfig(flags.config);
    const ids = flags.id ?? [];
    if (ids.length === 0 && !flags['all-running']) throw new CliError('USAGE', 'give the execution with --id ID (or several --id, or --all-running)', { hint: 'e.g. tether exec watch --id train-42' });
    if (flags['after-seq'] !== undefined && ids.length !== 1) {
      throw new CliError('INVALID_ARGUMENT', '--after-seq needs exactly one --id (a cursor belongs to one execution)', { hint: 'watch one execution to resume from its last_seq' });
    }
    const onPatterns = (flags['on-pattern'] ?? []).map((p) => regex(p, 'on-pattern'));
    const untilPattern = flags['until-pattern'] === undefined ? undefined : regex(flags['until-pattern'], 'until-pattern');
    const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, 'timeout');
    const idleMs = flags.idle === undefined ? undefined : parseDuration(flags.idle, 'idle');
    if (flags.poll !== undefined) parseDuration(flags.poll, 'poll');
    if (idleMs !== undefined && idleMs <= 0) throw new CliError('INVALID_ARGUMENT', '--idle must be longer than 0', { hint: 'e.g. --idle 10m' });
    const { machine } = await this.openMachine(flags.machine);
    const { monitor, activeExecutions } = await loadRuntime();
    const { artifactsOf } = await import('../../project.js');
    const result = await monitor(machine, {
      ids: flags['all-running'] ? await activeExecutions(machine) : [...new Set(ids)],
      stream: flags.stream as 'stdout' | 'stderr' | 'both',
      ...(flags['after-seq'] !== undefined ? { afterSeq: flags['after-seq'] } : {}),
      fromEnd: !flags.full,
      onPatterns,
      ...(untilPattern ? { untilPattern } : {}),
      ...(idleMs !== undefined ? { idleMs } : {}),
      ...(flags['max-events'] !== undefined ? { maxEvents: flags['max-events'] } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      until: flags.until as 'any' | 'all',
      emit: (event) => this.emit(event),
      // As codex-remote's watch: the artifacts manifest (.codex/artifacts.json) in the summary.
      summaryExtra: async (state) => {
        const artifacts = await artifactsOf(machine, state);
        return artifacts === undefined ? undefined : { artifacts };
      },
    });
    if (result.exitCode !== 0) process.exitCode = result.exitCode;
  }
}

function regex(source: string, flag: string): RegExp {
  try {
    return new RegExp(source);
  } catch (error) {
    throw new CliError('INVALID_ARGUMENT', `--${flag}: invalid regular expression: ${(error as Error).message}`, { hint: 'a JavaScript regular expression, e.g. "epoch \\\\d+ done"' });
  }
}
