import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { parseDuration } from '../../duration.js';
import { checkCouldNotRun, checkMachine } from '../../machineStatus.js';

/** The tools codex-remote's doctor looks for on a machine. */
const DEFAULT_TOOLS = ['python', 'pixi', 'rg', 'nvidia-smi', 'rsync'];

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail?: string;
}

export default class ExecDoctor extends TetherCommand {
  static override summary = 'Check that a machine is ready to run work: SSH, its daemon, and the tools commands need.';
  static override description = `Prints {"machine","overall_ok","checks":[{"name","ok","detail"?}],"hints":[…]} and exits 1 when a check failed (0 when all passed), as codex-remote's exec doctor does.

The checks: "ssh" (ssh machines only: the SSH login works), "daemon_health" (the daemon answers, as machine check), then one per --tool (default: python, pixi, rg, nvidia-smi, rsync): whether the command is found on the machine, looked up by a short execution with the environment and shell every execution there gets. Each failed check adds a hint. --json is accepted for codex-remote's sake: the output is JSON either way.`;
  static override examples = [
    { description: 'Is gpu1 ready?', command: '<%= config.bin %> exec doctor --machine gpu1' },
    { description: 'Only the tools this job needs', command: '<%= config.bin %> exec doctor --machine gpu1 --tool python3 --tool nvcc' },
  ];
  static override flags = {
    machine: machineFlag,
    json: Flags.boolean({ description: 'JSON output (the default; accepted as codex-remote takes it)', default: false }),
    timeout: Flags.string({ description: 'give up on each step after this long', default: '15s' }),
    tool: Flags.string({ description: `a command that must be on the machine; repeatable (default: ${DEFAULT_TOOLS.join(', ')})`, multiple: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecDoctor);
    this.useConfig(flags.config);
    const timeoutMs = parseDuration(flags.timeout, 'timeout');
    const tools = flags.tool ?? DEFAULT_TOOLS;
    const bad = tools.find((t) => !/^[\w.+-]+$/.test(t));
    if (bad !== undefined) throw new CliError('INVALID_ARGUMENT', `--tool: "${bad}" is not a command name`, { hint: 'a name looked up on the PATH, e.g. --tool python3' });
    this.errorContext.machine = flags.machine;
    const machines = await this.machines();
    if (flags.machine !== 'local') {
      this.errorContext.knownMachines = await machines.names();
      await machines.validate(flags.machine);
    }
    const status = await checkMachine(machines, flags.machine, timeoutMs);
    if (status.failure !== undefined && checkCouldNotRun(status.failure)) throw status.failure;

    const checks: Check[] = [];
    const hints: string[] = [];
    if (status.ssh_ok !== null) {
      checks.push({ name: 'ssh', ok: status.ssh_ok, ...(status.ssh_ok ? {} : { detail: status.error ?? 'ssh not reachable' }) });
      if (!status.ssh_ok) hints.push(status.hint ?? `check the SSH key, agent and host reachability, then: tether machine check --machine ${flags.machine}`);
    }
    checks.push({ name: 'daemon_health', ok: status.daemon_ok, ...(status.daemon_ok ? {} : { detail: status.error ?? 'daemon not healthy' }) });
    if (!status.daemon_ok && status.ssh_ok !== false) hints.push(status.hint ?? `tether machine up --machine ${flags.machine}, then check again`);

    const found = status.daemon_ok ? await this.#lookUp(flags.machine, tools, timeoutMs) : undefined;
    for (const tool of tools) {
      const ok = found?.has(tool) ?? false;
      checks.push({ name: tool, ok, ...(ok ? {} : { detail: found ? `${tool} not found` : 'not checked: the daemon did not answer' }) });
      if (!ok && found) hints.push(`install ${tool} on ${flags.machine} (or put it on the PATH its executions get)`);
    }
    const overall = checks.every((c) => c.ok);
    this.emit({ machine: flags.machine, overall_ok: overall, checks, hints });
    if (!overall) process.exitCode = 1;
  }

  /** The tools found on the machine, by one short execution (labelled `tether.preflight`). */
  async #lookUp(name: string, tools: readonly string[], timeoutMs: number): Promise<Set<string>> {
    const { machine } = await this.openMachine(name);
    const script = `for t in ${tools.join(' ')}; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done; exit 0`;
    const started = await machine.exec.start({ command: script, timeoutMs, labels: { 'tether.preflight': 'doctor' } });
    const done = started.status === 'finished' ? started : await machine.exec.wait(started.id);
    if (done.endReason !== 'exited') throw new CliError('TIMEOUT', `timeout: looking up the tools on ${name} did not finish (${done.endReason ?? 'unknown'})`, { hint: 'raise --timeout' });
    const { lines } = await machine.exec.logs(started.id, { streams: ['stdout'], tailLines: tools.length + 1 });
    return new Set(lines.map((l) => l.line));
  }
}
