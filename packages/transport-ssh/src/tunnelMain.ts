#!/usr/bin/env node
// The persistent tunnel as a process (see `startTunnel`); `connectViaTunnel` starts it detached:
//
//   node dist/tunnelMain.js --state-dir DIR [--idle-timeout-ms N] [--ssh-options JSON] [MACHINE_JSON]
//
// The machine config is the positional JSON, or stdin when there is none (stdin keeps a `token`
// field out of the process list). stdout gets exactly one JSON line, then nothing:
//   {"ready": <TunnelState>}     serving
//   {"busy": true}               another live tunnel serves this machine's socket (exit 0)
//   {"error": {code, message, details}}   could not start (exit 1)
// stderr gets JSON log lines. Exits 0 after the idle timeout or SIGTERM/SIGINT, 2 when the SSH
// connection dropped and could not be re-opened; the socket, state and token files are removed.
import { text } from 'node:stream/consumers';
import { parseArgs } from 'node:util';
import { TetherError, isTetherError, type MachineConfig } from '@tether/core';
import { sshOptionsSchema } from './pluginConfig.js';
import { startTunnel } from './startTunnel.js';

process.umask(0o077);
// The client reads the one stdout line and goes away; a later write must not kill the tunnel.
process.stdout.on('error', () => undefined);
process.on('SIGHUP', () => undefined);

const say = (line: unknown) => new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(line)}\n`, () => resolve()));
const log = (entry: Readonly<Record<string, unknown>>) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), pid: process.pid, ...entry })}\n`);

try {
  const { values, positionals } = parseArgs({
    options: { 'state-dir': { type: 'string' }, 'idle-timeout-ms': { type: 'string' }, 'ssh-options': { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const stateDir = values['state-dir'];
  if (!stateDir) throw new TetherError('INVALID_ARGUMENT', '--state-dir is required');
  const idleTimeoutMs = values['idle-timeout-ms'] === undefined ? undefined : Number(values['idle-timeout-ms']);
  const ssh = sshOptionsSchema.safeParse(values['ssh-options'] === undefined ? {} : parseJson(values['ssh-options'], '--ssh-options'));
  if (!ssh.success) throw new TetherError('INVALID_ARGUMENT', `--ssh-options: ${ssh.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const machine = parseJson(positionals[0] ?? (await text(process.stdin)), 'the machine config') as MachineConfig;

  const tunnel = await startTunnel(machine, { stateDir, idleTimeoutMs, ssh: ssh.data, log });
  if (!tunnel) {
    await say({ busy: true });
    process.exit(0);
  }
  const stop = () => void tunnel.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  void say({ ready: tunnel.state });
  const { reason } = await tunnel.closed;
  process.exit(reason === 'ssh-lost' ? 2 : 0);
} catch (error) {
  const failure = isTetherError(error)
    ? { code: error.code, message: error.message, details: error.details }
    : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error), details: {} };
  log({ event: 'failed', ...failure });
  await say({ error: failure });
  process.exit(1);
}

function parseJson(textValue: string, what: string): unknown {
  try {
    return JSON.parse(textValue);
  } catch {
    throw new TetherError('INVALID_ARGUMENT', `${what} is not valid JSON`);
  }
}
