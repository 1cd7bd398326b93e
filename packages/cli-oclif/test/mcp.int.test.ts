// `tether mcp` as a coding agent uses it: the SDK's own client spawns the built CLI over stdio,
// lists the tools, and drives local and a ws daemon through them. Bad input is a tool error and
// the server stays up.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import { BIN, cliEnv, type CliEnv } from './support.js';

let cli: CliEnv;
let daemon: Daemon;
let files: string;
let client: Client;

beforeAll(async () => {
  cli = cliEnv('tether-cli-mcp-');
  files = join(cli.root, 'box-files');
  mkdirSync(files);
  daemon = await startDaemon({
    listen: '127.0.0.1:0',
    dataDir: join(cli.root, 'box-daemon'),
    plugins: [processPlugin, { plugin: filesystemPlugin, config: { roots: [files] } }],
  });
  cli.writeConfig(`machines:
  - name: box
    addr: ${daemon.url}
    token_file: ${daemon.tokenFile}
`);
  client = new Client({ name: 'tether-test', version: '0.0.0' });
  const env = Object.fromEntries(Object.entries(cli.env).filter((e): e is [string, string] => e[1] !== undefined));
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp'], env, cwd: cli.home, stderr: 'pipe' }));
});
afterAll(async () => {
  await client?.close();
  await daemon?.close();
  await cli?.cleanup();
});

interface ToolReply {
  readonly isError: boolean;
  readonly json: Record<string, any>;
}

async function call(name: string, args: Record<string, unknown>): Promise<ToolReply> {
  const result = (await client.callTool({ name, arguments: args })) as { isError?: boolean; content: Array<{ type: string; text: string }> };
  const text = result.content[0]?.text ?? '';
  let json: Record<string, any>;
  try {
    json = JSON.parse(text);
  } catch {
    json = { text };
  }
  return { isError: result.isError === true, json };
}

describe('tether mcp', () => {
  it('lists the tools, each with an input schema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      ['exec_cancel', 'exec_logs', 'exec_result', 'exec_run', 'exec_start', 'exec_watch', 'exec_write', 'file_list', 'file_read', 'file_write', 'gpu_status', 'gpu_wait', 'machine_check', 'machine_list', 'sync'].sort(),
    );
    for (const tool of tools) expect(tool.inputSchema.type).toBe('object');
    expect(tools.find((t) => t.name === 'exec_run')!.inputSchema.required).toContain('cmd');
  });

  it('exec_run on local and on a ws daemon: bounded output, the exit code, the exec id', async () => {
    for (const machine of ['local', 'box']) {
      const run = await call('exec_run', { machine, cmd: 'echo hello; echo oops >&2; exit 2' });
      expect(run.isError, JSON.stringify(run.json)).toBe(false);
      expect(run.json).toMatchObject({ machine, status: 'finished', end_reason: 'exited', exit_code: 2, stdout: 'hello', stderr: 'oops', truncated: false });
      const result = await call('exec_result', { machine, id: run.json.exec_id });
      expect(result.json).toMatchObject({ exec_id: run.json.exec_id, status: 'finished', exit_code: 2, stdout_bytes: 6 });
    }
    const big = await call('exec_run', { cmd: 'seq 1 20000', max_output_bytes: 100 });
    expect(big.json.truncated).toBe(true);
    expect(big.json.stdout.endsWith('20000')).toBe(true);
    expect(big.json.stdout.length).toBeLessThanOrEqual(100);
  });

  it('exec_start, then exec_watch returns at the first actionable event; exec_logs reads the lines', async () => {
    const started = await call('exec_start', { machine: 'box', cmd: "for i in 1 2 3; do echo step $i; sleep 0.05; done; echo 'Traceback (most recent call last):'; sleep 30" });
    expect(started.json).toMatchObject({ machine: 'box', status: 'running' });
    const id = started.json.exec_id;
    const watched = await call('exec_watch', { machine: 'box', ids: [id], on_patterns: ['Traceback'] });
    expect(watched.isError, JSON.stringify(watched.json)).toBe(false);
    expect(watched.json.stop).toBe('pattern');
    expect(watched.json.events).toEqual([{ type: 'log', stream: 'stdout', line: 'Traceback (most recent call last):', seq: expect.any(Number) }]);
    expect(watched.json.summaries).toEqual([expect.objectContaining({ exec_id: id, status: 'running' })]);
    const logs = await call('exec_logs', { machine: 'box', id, tail_lines: 2 });
    expect(logs.json.lines.map((l: { line: string }) => l.line)).toEqual(['step 3', 'Traceback (most recent call last):']);
    const idle = await call('exec_watch', { machine: 'box', ids: [id], after_seq: watched.json.summaries[0].last_seq, idle: '300ms' });
    expect(idle.json).toMatchObject({ stop: 'idle', exit_code: 125, events: [{ type: 'idle', exec_id: id }] });
    const cancelled = await call('exec_cancel', { machine: 'box', id, grace: '1s' });
    expect(cancelled.json).toMatchObject({ canceled: true, exec_id: id });
  });

  it('exec_write feeds stdin', async () => {
    const started = await call('exec_start', { cmd: 'read x; echo "got $x"', stdin: true });
    await call('exec_write', { id: started.json.exec_id, data: 'hi\n', eof: true });
    const watched = await call('exec_watch', { ids: [started.json.exec_id] });
    expect(watched.json.stop).toBe('finished');
    expect(watched.json.events).toEqual([expect.objectContaining({ line: 'got hi' })]);
  });

  it('file_write, file_read and file_list on the ws daemon', async () => {
    const path = join(files, 'notes', 'a.txt');
    expect((await call('file_write', { machine: 'box', path, content: 'héllo\n', mkdir: true })).json).toEqual({ ok: true, path, bytes_written: 7 });
    expect((await call('file_read', { machine: 'box', path })).json).toMatchObject({ ok: true, size: 7, encoding: 'utf8', content: 'héllo\n', truncated: false });
    expect((await call('file_read', { machine: 'box', path, max_bytes: 2, encoding: 'base64' })).json).toMatchObject({ content: Buffer.from('h\xc3', 'latin1').toString('base64'), truncated: true });
    const listed = await call('file_list', { machine: 'box', path: join(files, 'notes') });
    expect(listed.json.entries.map((e: { name: string }) => e.name)).toEqual(['a.txt']);
    const outside = await call('file_read', { machine: 'box', path: '/etc/passwd' });
    expect(outside.isError).toBe(true);
    expect(outside.json.error.code).toBe('PATH_OUTSIDE_ROOT');
  });

  it('bad input is a tool error with a hint, and the server stays up', async () => {
    const missing = await call('exec_result', {});
    expect(missing.isError).toBe(true);
    expect(missing.json.text).toMatch(/id/);
    const wrongType = await call('exec_run', { cmd: 42 });
    expect(wrongType.isError).toBe(true);
    const badPattern = await call('exec_watch', { ids: ['x1'], on_patterns: ['('] });
    expect(badPattern.isError).toBe(true);
    expect(badPattern.json.error).toMatchObject({ code: 'INVALID_ARGUMENT', hint: expect.any(String) });
    const unknown = await call('exec_result', { machine: 'nowhere', id: 'x1' });
    expect(unknown.json.error).toMatchObject({ code: 'UNKNOWN_MACHINE', message: expect.stringContaining('unknown machine'), hint: expect.stringContaining('box') });
    const notFound = await call('exec_result', { id: 'no-such-exec' });
    expect(notFound.json.error.message).toContain('exec_id not found');
    const check = await call('machine_check', { machine: 'box' });
    expect(check.json).toMatchObject({ name: 'box', transport: 'ws', daemon_ok: true });
    const list = await call('machine_list', {});
    expect(list.json).toMatchObject({ total: 2, daemon_ok: 2 });
  });
});
