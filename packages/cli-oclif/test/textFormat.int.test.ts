// exec run / exec logs for people: on a terminal (or with --format text) the output as the
// command wrote it, colours kept; in a pipe the JSON lines of the contract.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cliEnv, type CliEnv } from './support.js';

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv('tether-cli-text-');
});
afterAll(async () => {
  await cli.cleanup();
});

const RED = '\u001b[31mred\u001b[0m';
const command = `printf '${RED.replaceAll('\u001b', '\\033')}\\n'; echo warn >&2; echo two`;

/** Runs the CLI on a pseudo-terminal (util-linux script), returning what the terminal showed. */
function onTerminal(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', quoted, '/dev/null'], { env: cli.env, cwd: cli.home, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('--format text', () => {
  it('exec run and exec logs print the lines as written, colours kept, stderr on stderr', async () => {
    const run = await cli.run(['exec', 'run', '--format', 'text', '--cmd', command]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${RED}\ntwo\n`);
    expect(run.stderr).toMatch(/^\[tether\] started (\S+)\nwarn\n\[tether\] \1 exited 0 after \d+ ms\n$/);
    const id = /started (\S+)/.exec(run.stderr)![1]!;
    const logs = await cli.run(['exec', 'logs', '--id', id, '--stream', 'both', '--format', 'text']);
    expect([logs.code, logs.stdout, logs.stderr]).toEqual([0, `${RED}\ntwo\n`, 'warn\n']);
    // A pipe without --format keeps the contract's JSON lines.
    expect((await cli.run(['exec', 'logs', '--id', id])).lines()).toEqual([
      { type: 'log', stream: 'stdout', line: RED, seq: expect.any(Number) },
      { type: 'log', stream: 'stdout', line: 'two', seq: expect.any(Number) },
    ]);
  });

  it('is the default on a terminal; TETHER_FORMAT=json brings the JSON back', async () => {
    const shown = await onTerminal(['exec', 'run', '--cmd', command]);
    expect(shown.code).toBe(0);
    expect(shown.output).toContain(`${RED}\r\n`);
    expect(shown.output).not.toContain('{"type"');
    cli.env['TETHER_FORMAT'] = 'json';
    try {
      expect((await onTerminal(['exec', 'run', '--cmd', 'echo plain'])).output).toMatch(/\{"type":"log","stream":"stdout","line":"plain"/);
    } finally {
      delete cli.env['TETHER_FORMAT'];
    }
  });
});
