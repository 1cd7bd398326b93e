#!/usr/bin/env node
// The bridge as a process: `node dist/bridgeMain.js --connect 127.0.0.1:7337` (or a socket path).
// Pipes stdin/stdout to the daemon's listener byte for byte; the SSH transport runs it over an
// exec channel where the server forbids TCP forwarding. The CLI's `tether daemon bridge` does the
// same through `bridgeStdio`. Errors go to stderr as one JSON line; the exit code is 1.
import { isAbsolute } from 'node:path';
import { parseArgs } from 'node:util';
import { bridgeStdio, type BridgeTarget } from './bridgeStdio.js';

function parseTarget(text: string): BridgeTarget {
  if (text.startsWith('unix:')) return { socketPath: text.slice('unix:'.length) };
  if (isAbsolute(text)) return { socketPath: text };
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (!match) throw new Error(`--connect wants host:port or a socket path, not "${text}"`);
  return { host: (match[1] ?? match[2])!, port: Number(match[3]) };
}

try {
  const { values } = parseArgs({ options: { connect: { type: 'string', default: '127.0.0.1:7337' } }, strict: true });
  await bridgeStdio(parseTarget(values.connect));
  process.exit(0);
} catch (error) {
  const json = error instanceof Error ? { code: (error as { code?: string }).code ?? 'INTERNAL', message: error.message } : { code: 'INTERNAL', message: String(error) };
  process.stderr.write(`${JSON.stringify({ error: json })}\n`);
  process.exit(1);
}
