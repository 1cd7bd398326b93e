import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { TetherError, type Channel, type MachineConfig, type Transport } from '@tether/core';
import { connectWs } from '@tether/transport-ws';
import { machineSchema, type StdioMachineConfig } from './machineSchema.js';

/** Lines of the bridge's stderr quoted when it fails. */
const STDERR_LINES = 3;

/**
 * The `stdio` transport: each channel is a new bridge process (`command`), whose stdin and stdout
 * carry a WebSocket to the daemon (`connectWs({ stream })` speaks it over any byte stream), with
 * the token from `token_command` or `token_file`. The channel closes when the process exits, and
 * closing the channel ends the process.
 */
export class StdioTransport implements Transport {
  readonly name = 'stdio';

  async connect(machine: MachineConfig, signal?: AbortSignal): Promise<Channel> {
    const { name: _name, transport: _transport, ...fields } = machine;
    const parsed = machineSchema.safeParse(fields);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new TetherError('INVALID_ARGUMENT', `machine ${machine.name}: ${issue.path.join('.') || '(fields)'}: ${issue.message}`, { machine: machine.name });
    }
    const config = parsed.data;
    const token = await readToken(config, machine.name);
    const [program, ...args] = config.command as [string, ...string[]];
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-4096)));
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(new TetherError('CONNECTION_LOST', `connection refused: cannot run ${program} for machine ${machine.name}: ${error.message}`, { machine: machine.name }, { cause: error })));
    });
    await spawned;
    const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
    try {
      const channel = await connectWs('ws://127.0.0.1/', { token, stream, display: `the bridge \`${config.command.join(' ')}\``, ...(signal ? { signal } : {}) });
      // The bridge ends with the channel (its stdin closes when the daemon side ends, too).
      return {
        messages$: channel.messages$,
        send: (message) => channel.send(message),
        get bufferedAmount() {
          return channel.bufferedAmount;
        },
        close(reason) {
          channel.close(reason);
          child.kill('SIGTERM');
        },
      };
    } catch (error) {
      child.kill('SIGTERM');
      const code = child.exitCode ?? (await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c))));
      const said = stderr.trim().split('\n').slice(-STDERR_LINES).join(' | ');
      if (error instanceof TetherError && error.code === 'UNAUTHORIZED') throw error;
      throw new TetherError('CONNECTION_LOST', `connection refused: the bridge \`${config.command.join(' ')}\` of machine ${machine.name} did not reach the daemon (exit ${code}${said ? `: ${said}` : ''})`, { machine: machine.name }, { cause: error });
    }
  }
}

async function readToken(config: StdioMachineConfig, name: string): Promise<string> {
  let text: string;
  try {
    if (config.token_file !== undefined) text = await readFile(config.token_file, 'utf8');
    else {
      const [program, ...args] = config.token_command as [string, ...string[]];
      text = (await promisify(execFile)(program, args, { timeout: 20_000 })).stdout;
    }
  } catch (error) {
    throw new TetherError('UNAUTHORIZED', `unauthorized: cannot read the daemon token of machine ${name}: ${(error as Error).message.split('\n')[0]}`, { machine: name }, { cause: error });
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) throw new TetherError('UNAUTHORIZED', `unauthorized: no usable daemon token for machine ${name}`, { machine: name });
  return token;
}
