// Helpers shared by this package's tests: temp dirs, the daemon as a child process, a TCP proxy
// the test can cut, a raw authenticated WebSocket.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import type { PluginEntry } from '@tether/core';

export const DAEMON_MAIN = fileURLToPath(new URL('../dist/daemonMain.js', import.meta.url));

/** The first-party backends, files confined to `root`, no nvidia-smi. */
export function backends(root: string): PluginEntry[] {
  return [processPlugin, { plugin: filesystemPlugin, config: { roots: [root] } }, { plugin: gpuPlugin, config: { command: 'tether-no-nvidia-smi' } }];
}

/** Temp dirs made by a test file, removed by `removeTempDirs` (call it in afterAll). */
const dirs: string[] = [];
export async function tempDir(prefix = 'tether-ws-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export async function removeTempDirs(): Promise<void> {
  // Retried: a supervisor a test left running may still write in its daemon's dir (until it sees
  // the dir gone, and ends its command).
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })));
}

export { eventually } from '@tether/core/testing';

export interface DaemonChild {
  readonly child: ChildProcess;
  readonly url: string;
  readonly tokenFile: string;
  stderr(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `daemonMain.js` (built) as a child process and waits for its ready line. */
export async function startDaemonChild(args: string[]): Promise<DaemonChild> {
  const child = spawn(process.execPath, [DAEMON_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = await new Promise<{ url: string; tokenFile: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(JSON.parse(line));
    });
    void exited.then(({ code, signal }) => reject(new Error(`daemon exited (${code ?? signal}) before it was ready: ${stderr}`)));
  });
  return { child, ...ready, stderr: () => stderr, exited };
}

export { CuttableProxy, type ProxiedConnection } from '@tether/core/testing';

/**
 * Reads the text frames a WebSocket client sends (masked, RFC 6455) from the raw bytes of its
 * connection, after the HTTP upgrade request. Feed it every client → daemon chunk in order.
 */
export class ClientFrameReader {
  #buffer = Buffer.alloc(0);
  #upgraded = false;

  /** Returns the complete text frames contained in what was fed so far. */
  feed(chunk: Buffer): string[] {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    if (!this.#upgraded) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end < 0) return [];
      this.#upgraded = true;
      this.#buffer = this.#buffer.subarray(end + 4);
    }
    const texts: string[] = [];
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) break;
      const opcode = b[0]! & 0x0f;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) break;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) break;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (b[1]! & 0x80) !== 0;
      const mask = masked ? b.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      if (b.length < offset + length) break;
      const payload = Buffer.from(b.subarray(offset, offset + length));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
      if (opcode === 1) texts.push(payload.toString('utf8'));
      this.#buffer = b.subarray(offset + length);
    }
    return texts;
  }
}

/** A raw `ws` client with the token; resolves once open. */
export function rawClient(url: string, token: string | undefined, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }), ...headers }, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.on('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

/** The HTTP status a WebSocket upgrade attempt gets (101 when it is accepted). */
export function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', (error) => reject(error));
  });
}

/** Sends one text message on a raw client and resolves with the next text message back. */
export function exchange(ws: WebSocket, message: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      ws.off('message', onMessage);
      resolve(JSON.parse(data.toString()));
    };
    ws.on('message', onMessage);
    ws.once('close', (code) => reject(new Error(`closed with ${code}`)));
    ws.send(message);
  });
}
