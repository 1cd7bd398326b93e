import { Flags } from '@oclif/core';
import { constants } from 'node:os';
import { TetherCommand } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';
import { sshMachine } from '../../sshMachine.js';

export default class MachineSsh extends TetherCommand {
  static override summary = 'Run a command on a machine over SSH, with agent forwarding.';
  static override description =
    'Runs --cmd in the remote user\'s login shell over a new SSH connection (ssh config, ssh-agent, known_hosts as for the ssh transport; no daemon needed), with the ssh-agent forwarded as `ssh -A` does, and prints {"ok","ssh","forward_agent","tty","stdout","stderr","code"} once it has finished. forward_agent is true when the agent was forwarded (false when there is no ssh-agent, or the server refuses). With --tty the command runs in a pseudo-terminal (its stderr then arrives in stdout). Exits with the command\'s exit code (128+N when signal N ended it), like ssh.';
  static override examples = [
    { description: 'Clone a private repository with your keys', command: "<%= config.bin %> machine ssh --machine gpu1 --cmd 'git clone git@github.com:me/private.git'" },
    { description: 'Something that wants a terminal', command: "<%= config.bin %> machine ssh --machine gpu1 --tty --cmd 'top -bn1 | head'" },
  ];
  static override flags = {
    machine: Flags.string({ char: 'm', description: 'the machine (one reached over SSH)', required: true }),
    cmd: Flags.string({ description: "the command, run by the remote user's login shell", required: true }),
    tty: Flags.boolean({ description: 'run it in a pseudo-terminal', default: false }),
    timeout: Flags.string({ description: 'give up (and close the session) after this long, e.g. 10m; default: no limit' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineSsh);
    this.useConfig(flags.config);
    this.errorContext.machine = flags.machine;
    this.errorContext.transport = 'ssh';
    const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, 'timeout');
    const target = await sshMachine(await this.machines(), flags.machine, 'machine ssh');
    const result = await target.ssh.runSshCommand(target.config.ssh, flags.cmd, {
      ...target.connectOptions,
      tty: flags.tty,
      forwardAgent: true,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
    this.emit({
      ok: result.code === 0,
      ssh: target.config.ssh,
      forward_agent: result.forwardAgent,
      tty: flags.tty,
      stdout: result.stdout,
      stderr: result.stderr,
      code: result.code,
      ...(result.signal === undefined ? {} : { signal: result.signal }),
    });
    process.exitCode = exitCode(result.code, result.signal);
  }
}

function exitCode(code: number | null, signal: string | undefined): number {
  if (code !== null) return code;
  const number = signal === undefined ? undefined : (constants.signals as Record<string, number>)[`SIG${signal.replace(/^SIG/, '')}`];
  return number === undefined ? 255 : 128 + number;
}
