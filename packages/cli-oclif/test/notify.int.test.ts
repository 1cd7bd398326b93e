// exec start --notify-cmd/--notify-url on the local daemon: the CLI call returns at once and
// exits; the daemon delivers both notifications when the command ends, and exec result shows it.
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RFC3339, cliEnv, eventually, type CliEnv } from './support.js';

let cli: CliEnv;
let server: Server;
let url: string;
const bodies: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  cli = cliEnv('tether-cli-notify-');
  server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      bodies.push(JSON.parse(body) as Record<string, unknown>);
      response.statusCode = 200;
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/done`;
});
afterAll(async () => {
  server?.close();
  await cli?.cleanup();
});

it('the daemon notifies when the execution ends, with no client connected; exec result shows it', async () => {
  const log = join(cli.root, 'finished.jsonl');
  const started = await cli.run(['exec', 'start', '--cmd', 'sleep 0.3; echo bye; exit 4', '--notify-cmd', `cat >> '${log}'`, '--notify-url', url]);
  expect(started.code, started.stderr).toBe(0);
  const id = started.json().exec_id as string;
  // The start call has exited: nobody is connected while the command runs and ends.
  const result = await eventually(async () => {
    const r = (await cli.run(['exec', 'result', '--id', id])).json();
    return r['notifications']?.length === 2 ? r : undefined;
  });
  expect(result).toMatchObject({ status: 'finished', end_reason: 'exited', exit_code: 4 });
  const byChannel = Object.fromEntries((result['notifications'] as Array<Record<string, unknown>>).map((n) => [n['channel'], n]));
  expect(byChannel['command']).toEqual({ channel: 'command', delivered: true, attempts: 1, at: expect.stringMatching(RFC3339), detail: 'exit 0' });
  expect(byChannel['url']).toEqual({ channel: 'url', delivered: true, attempts: 1, at: expect.stringMatching(RFC3339), detail: 'HTTP 200' });
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ exec_id: id, end_reason: 'exited', exit_code: 4, stdout_bytes: 4 });
  expect(bodies).toEqual([expect.objectContaining({ exec_id: id, exit_code: 4 })]);
  // An execution without notifications has no "notifications" field.
  const plain = await cli.run(['exec', 'run', '--cmd', 'true']);
  const plainId = plain.lines()[0]!['exec_id'];
  expect((await cli.run(['exec', 'result', '--id', plainId])).json()).not.toHaveProperty('notifications');
});

it('a bad --notify-url is refused before anything runs', async () => {
  const bad = await cli.run(['exec', 'start', '--cmd', 'true', '--notify-url', 'file:///etc/passwd']);
  expect(bad.code).toBe(2);
  expect(bad.stdout).toBe('');
  expect(bad.error()).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('http') });
});
