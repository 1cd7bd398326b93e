import { Flags } from '@oclif/core';
import { connect } from 'node:net';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { daemonFiles, tetherPaths } from '../../paths.js';

type Target = { readonly socketPath: string } | { readonly host: string; readonly port: number };
type Bridge = (target: Target) => Promise<void>;

export default class DaemonBridge extends TetherCommand {
  static override summary = "Pipe stdin/stdout to the daemon's listener, byte for byte.";
  static override description = `For SSH hosts that forbid TCP forwarding: a client runs "tether daemon bridge" over an SSH exec channel and speaks to the daemon through it. Connects to the local daemon's Unix socket (or --socket, or --connect host:port) and copies bytes both ways until either side closes. Prints nothing of its own on stdout; errors go to stderr as JSON. It does not start a daemon: with none listening it fails with "connection refused" (start the local one with tether machine check, or run tether daemon serve).`;
  static override examples = [
    { description: 'To the Unix socket of the local daemon', command: '<%= config.bin %> daemon bridge' },
    { description: 'To a daemon on a TCP port (what the ssh transport runs)', command: '<%= config.bin %> daemon bridge --connect 127.0.0.1:7337' },
  ];
  static override flags = {
    socket: Flags.string({ description: "a Unix socket (default: the local daemon's, $XDG_STATE_HOME/tether/daemon.sock)", exclusive: ['connect'] }),
    connect: Flags.string({ description: 'a TCP address host:port instead' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonBridge);
    this.useConfig(flags.config);
    let target: Target;
    if (flags.connect !== undefined) {
      const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(flags.connect);
      if (!match) throw new CliError('INVALID_ARGUMENT', `--connect: expected host:port, got "${flags.connect}"`);
      target = { host: match[1] ?? match[2]!, port: Number(match[3]) };
    } else {
      target = { socketPath: flags.socket ?? daemonFiles(tetherPaths().stateDir).socket };
    }
    await (await bridge())(target);
  }
}

/** The ssh transport's bridge when it is installed (it is what its clients expect), else a plain pipe. */
async function bridge(): Promise<Bridge> {
  const name = '@tether/transport-ssh';
  try {
    const module = (await import(name)) as { bridgeStdio?: Bridge };
    if (typeof module.bridgeStdio === 'function') return module.bridgeStdio;
  } catch {
    // not installed: use the plain pipe below
  }
  return pipeStdio;
}

async function pipeStdio(target: Target): Promise<void> {
  const where = 'socketPath' in target ? target.socketPath : `${target.host}:${target.port}`;
  const socket = 'socketPath' in target ? connect(target.socketPath) : connect(target.port, target.host);
  await new Promise<void>((resolve, reject) => {
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
      socket.once('close', () => resolve());
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code ?? error.message;
      reject(new CliError('CONNECTION_LOST', connected ? `connection reset by peer: ${where} (${why})` : `connection refused: nothing is listening at ${where} (${why})`, { hint: 'is the daemon running? tether daemon status' }));
    });
  });
}
