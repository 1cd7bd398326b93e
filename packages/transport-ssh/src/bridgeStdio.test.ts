import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { bridgeStdio } from './bridgeStdio.js';
import { BRIDGE_MAIN, freePort } from '../test/support.js';

let server: Server;
let port: number;

beforeAll(async () => {
  // Answers every connection with the SHA-256 of all it received, once the client has finished sending.
  server = createServer({ allowHalfOpen: true }, (socket) => {
    const hash = createHash('sha256');
    socket.on('data', (chunk) => hash.update(chunk));
    socket.on('end', () => socket.end(hash.digest('hex')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('bridgeStdio', () => {
  it('pipes input to the listener and its answer to output, byte for byte', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const chunks: Buffer[] = [];
    output.on('data', (chunk: Buffer) => chunks.push(chunk));
    const data = randomBytes(3 * 1024 * 1024);
    const done = bridgeStdio({ host: '127.0.0.1', port }, { input, output });
    input.end(data);
    await done;
    expect(Buffer.concat(chunks).toString()).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('fails with "connection refused" when nothing listens', async () => {
    const error = await bridgeStdio({ host: '127.0.0.1', port: await freePort() }, { input: new PassThrough(), output: new PassThrough() }).catch((e: unknown) => e);
    expect(isTetherError(error, 'CONNECTION_LOST')).toBe(true);
    expect((error as Error).message).toMatch(/^connection refused/);
  });

  it('runs as a process (dist/bridgeMain.js), as the bridge command does', async () => {
    const data = randomBytes(256 * 1024);
    const child = spawn(process.execPath, [BRIDGE_MAIN, '--connect', `127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin.end(data);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(stdout).toBe(createHash('sha256').update(data).digest('hex'));

    const refused = spawn(process.execPath, [BRIDGE_MAIN, '--connect', `127.0.0.1:${await freePort()}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    refused.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await new Promise((resolve) => refused.once('exit', resolve))).toBe(1);
    expect(JSON.parse(stderr)).toMatchObject({ error: { code: 'CONNECTION_LOST', message: expect.stringMatching(/^connection refused/) } });
  });
});
