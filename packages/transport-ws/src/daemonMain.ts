#!/usr/bin/env node
// The daemon as a process: `node dist/daemonMain.js --listen 127.0.0.1:7337 --data-dir DIR`.
// Prints one JSON line {"url","tokenFile","pid"} on stdout once it serves, logs JSON lines to
// stderr, and shuts down gracefully on SIGTERM/SIGINT (a second signal exits at once).
//
// Options:
//   --listen ADDR          host:port or a Unix socket path (default 127.0.0.1:7337)
//   --data-dir DIR         state directory (default $XDG_STATE_HOME/tether or ~/.local/state/tether)
//   --token-file FILE      token file (default DIR/token, created on first start)
//   --plugin NAME          a plugin package to load; repeatable; replaces the default set
//                          (@tether/plugin-process, @tether/plugin-filesystem, @tether/plugin-gpu-nvidia)
//   --plugin-config JSON   {"<plugin name>": <config>, …}
//   --tls-cert FILE --tls-key FILE   serve wss://
//   --allow-origin ORIGIN  a browser origin allowed to connect; repeatable
//   --allow-host NAME      a Host header name accepted besides the listen address; repeatable
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isTetherError, type Plugin, type PluginEntry } from '@tether/core';
import { startDaemon } from './startDaemon.js';
import type { LogEntry } from './wsListener.js';

const DEFAULT_PLUGINS = ['@tether/plugin-process', '@tether/plugin-filesystem', '@tether/plugin-gpu-nvidia'];

const log = (entry: LogEntry) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...entry })}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:7337' },
      'data-dir': { type: 'string' },
      'token-file': { type: 'string' },
      plugin: { type: 'string', multiple: true },
      'plugin-config': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'allow-origin': { type: 'string', multiple: true },
      'allow-host': { type: 'string', multiple: true },
    },
    strict: true,
  });
  const dataDir = values['data-dir'] ?? join(process.env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state'), 'tether');
  const configs = values['plugin-config'] === undefined ? {} : (JSON.parse(values['plugin-config']) as Record<string, unknown>);
  const plugins = await loadPluginPackages(values.plugin ?? DEFAULT_PLUGINS, configs, dataDir);
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new Error('--tls-cert and --tls-key go together');

  const daemon = await startDaemon({
    listen: values.listen,
    dataDir,
    tokenFile: values['token-file'],
    plugins,
    allowedOrigins: values['allow-origin'],
    allowedHosts: values['allow-host'],
    tls: values['tls-cert'] && values['tls-key'] ? { certFile: values['tls-cert'], keyFile: values['tls-key'] } : undefined,
    handleSignals: true,
    log,
  });
  process.stdout.write(`${JSON.stringify({ url: daemon.url, tokenFile: daemon.tokenFile, pid: process.pid })}\n`);
  // startDaemon drops its signal handlers as shutdown begins, so a second signal ends the process at once.
  await daemon.closed;
  process.exit(0);
}

/** Imports plugin packages by name; one that cannot be imported is logged and skipped. */
async function loadPluginPackages(names: readonly string[], configs: Record<string, unknown>, dataDir: string): Promise<PluginEntry[]> {
  const entries: PluginEntry[] = [];
  for (const name of names) {
    try {
      const module = (await import(name)) as { default?: unknown };
      const plugin = module.default as Plugin;
      const config = configs[name] ?? (name === '@tether/plugin-filesystem' ? { dataDir } : undefined);
      entries.push(config === undefined ? plugin : { plugin, config });
    } catch (error) {
      log({ level: 'warn', msg: 'plugin package could not be imported', plugin: name, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return entries;
}

main().catch((error: unknown) => {
  const json = isTetherError(error) ? error.toJSON() : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
  log({ level: 'error', msg: 'the daemon could not start', error: json });
  process.exit(1);
});
