import { Command, Flags, ux, type Interfaces } from '@oclif/core';
import { describeError, type ErrorContext } from './cliError.js';
import type { Machines, OpenedMachine } from './machines.js';
import { writeJson } from './output.js';
import { tetherPaths } from './paths.js';

/**
 * The base of every tether command: `--config`, JSON on stdout, errors as JSON on stderr with
 * an exit code by error code, and machines opened on demand and closed when the command ends.
 * Heavy modules (the kernel, transports, the config parser) are imported only when used.
 */
export abstract class TetherCommand extends Command {
  static override baseFlags = {
    config: Flags.string({
      description: 'config file (default: $XDG_CONFIG_HOME/tether/config.yaml, i.e. ~/.config/tether/config.yaml)',
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({
      description: 'say more on stderr: one JSON line per SSH tunnel connection ({"tunnel":{…}})',
      helpGroup: 'GLOBAL',
    }),
  };

  /** What the error hint may mention (the machine in use, the config file…). */
  protected errorContext: { -readonly [K in keyof ErrorContext]: ErrorContext[K] } = {};
  #machines: Machines | undefined;
  #configPath: string | undefined;
  #spinning = false;
  #verbose = false;

  /** Parses as oclif does, and remembers the global `--verbose` (the generics are oclif's FlagOutput/ArgOutput, which it does not export). */
  protected override async parse<F extends Record<string, any>, B extends Record<string, any>, A extends Record<string, any>>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const output = await super.parse(options, argv);
    this.#verbose = (output.flags as { verbose?: unknown }).verbose === true;
    return output;
  }

  /** Print one JSON object (or one JSON line of a stream) on stdout. */
  protected emit(value: unknown): void {
    writeJson(value);
  }

  /** `--format text` (`exec run`, `exec logs`): lines as the command wrote them, for people. */
  #text = false;

  /**
   * Chooses the output of `--format`: `text`, `json`, or (unset) `$TETHER_FORMAT`, else text on a
   * terminal and JSON in a pipe (an agent on a pseudo-terminal sets TETHER_FORMAT=json).
   */
  protected useFormat(format: string | undefined): void {
    const chosen = format ?? process.env['TETHER_FORMAT'];
    this.#text = chosen === 'text' || (chosen !== 'json' && chosen !== 'jsonl' && process.stdout.isTTY === true);
  }

  /** A line of output: a JSON line, or in text mode the line itself (colours kept) on stdout or stderr, as it came. */
  protected emitLine(record: { readonly type: 'log'; readonly stream: 'stdout' | 'stderr'; readonly line: string; readonly seq: number; readonly cut?: true }): void {
    if (!this.#text) return this.emit(record);
    (record.stream === 'stderr' ? process.stderr : process.stdout).write(`${record.line}\n`);
  }

  /** A `started`/`finished` record: a JSON line, or in text mode one line on stderr (stdout keeps the command's own output). */
  protected emitStatus(record: Readonly<Record<string, unknown>> & { readonly type: string }, text: () => string): void {
    if (!this.#text) return this.emit(record);
    process.stderr.write(`[tether] ${text()}\n`);
  }

  /** Remember `--config` for the machines this command opens. */
  protected useConfig(path: string | undefined): void {
    this.#configPath = path;
    if (path !== undefined) this.errorContext.configFile = path;
  }

  /** The config file to read: `--config`, or the default path (a missing default file is an empty config). */
  protected configFile(): { path: string; explicit: boolean } {
    return { path: this.#configPath ?? tetherPaths().configFile, explicit: this.#configPath !== undefined };
  }

  protected async machines(): Promise<Machines> {
    if (!this.#machines) {
      const { Machines } = await import('./machines.js');
      this.#machines = new Machines({
        configPath: this.#configPath,
        cliRoot: this.config.root,
        cliName: this.config.name,
        packages: () => this.config.getPluginsList(),
        onProgress: (message) => this.progress(message),
        verbose: this.#verbose,
      });
      this.errorContext.configFile ??= this.#machines.configPath;
      this.errorContext.daemonLog = this.#machines.localFiles.log;
    }
    return this.#machines;
  }

  /** Opens a machine by name (`local` starts the local daemon if needed). */
  protected async openMachine(name: string, options?: { connectTimeoutMs?: number }): Promise<OpenedMachine> {
    this.errorContext.machine = name;
    const machines = await this.machines();
    if (name !== 'local') this.errorContext.knownMachines = await machines.names().catch(() => undefined);
    try {
      const opened = await machines.open(name, options);
      this.errorContext.transport = opened.transport;
      return opened;
    } catch (error) {
      if (name !== 'local') this.errorContext.transport = (await machines.config().catch(() => undefined))?.machines.find((m) => m.config.name === name)?.config.transport;
      throw error;
    } finally {
      this.stopProgress();
    }
  }

  /** A spinner on stderr, only when stderr is a terminal (agents read stderr for errors). */
  protected progress(message: string): void {
    if (!process.stderr.isTTY) return;
    ux.action.start(message);
    this.#spinning = true;
  }

  protected stopProgress(status?: string): void {
    if (!this.#spinning) return;
    this.#spinning = false;
    ux.action.stop(status);
  }

  override async catch(error: Error & { exitCode?: number }): Promise<void> {
    this.stopProgress('failed');
    process.exitCode = this.reportError(error);
  }

  /** Prints `error` as the JSON error on stderr; returns the exit code its code maps to. */
  protected reportError(error: unknown): number {
    const { json, exitCode } = describeError(error, { ...this.errorContext, command: this.id });
    process.stderr.write(`${JSON.stringify(json)}\n`);
    return exitCode;
  }

  override async finally(error: Error | undefined): Promise<void> {
    this.stopProgress();
    await this.#machines?.close();
    return super.finally(error);
  }
}

/** `--machine`, default `local`. */
export const machineFlag = Flags.string({
  char: 'm',
  description: 'the machine: local (this machine, no config needed) or a name from the config file',
  default: 'local',
});

/** `--machine` of a command that also fans out: `a,b` or `@label` (labels from the config) name several machines. */
export function fanOutMachineFlag(several: string) {
  return Flags.string({
    char: 'm',
    description: `the machine: local (this machine, no config needed) or a name from the config file; several: a,b or @label (${several})`,
    default: 'local',
  });
}
