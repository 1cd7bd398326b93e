import { Flags } from '@oclif/core';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { declaredKernelPlugins, importKernelPlugins, isDaemonPlugin, pluginConfigFault, pluginEntries } from '../../kernelPlugins.js';
import { daemonFiles, listenPort, portRecord, tetherPaths, type DaemonFiles } from '../../paths.js';
import { startDaemonRelay, type DaemonRelaySettings } from '../../daemonRelay.js';
import type { DaemonSettings } from '../../config/configFile.js';

/** The relay to register with: the flags, else the config's daemon: section; none when neither names one. */
function relaySettingsOf(
  flags: { relay?: string; environment?: string; 'relay-credential-file'?: string; 'relay-ca-file'?: string },
  config: DaemonSettings,
): DaemonRelaySettings | undefined {
  const relay = flags.relay ?? config.relay;
  const environment = flags.environment ?? config.environment;
  if (relay === undefined || environment === undefined) return undefined;
  return {
    relay,
    environment,
    credentialFile: flags['relay-credential-file'] ?? config.relay_credential_file,
    relayCaFile: flags['relay-ca-file'] ?? config.relay_ca_file,
  };
}

function relayJson(relay: { fingerprint: string; relay: string } | undefined, settings: DaemonRelaySettings | undefined): Record<string, unknown> {
  return relay && settings ? { relay: { url: relay.relay, environment: settings.environment, fingerprint: relay.fingerprint } } : {};
}

export default class DaemonServe extends TetherCommand {
  static override summary = 'Run the tether daemon in the foreground.';
  static override description = `Serves this machine to tether clients: always on the Unix socket <data-dir>/daemon.sock (mode 0600), and on --listen (default 127.0.0.1:7337: loopback TCP, which the ssh transport reaches through SSH; clients need the token). Executions are recorded in <data-dir>/events (LevelDB). Logs JSON lines to stderr; prints {"ok","pid","data_dir","socket","urls","token_file"} on stdout once serving. SIGTERM or SIGINT stops it gracefully (running executions keep running under their supervisors, for the next daemon to re-attach); SIGUSR2 stops it and cancels them.

The CLI starts this in the background by itself for the machine "local" (Unix socket only). When such a daemon already holds the data dir, "daemon serve --listen ADDR" does not fail on the store's lock: it serves ADDR for that daemon (same token, same checks) until that daemon stops, and prints "attached_to": its pid. Run it by hand to serve other machines over TCP, or to watch its log.

With --relay and --environment (or relay/environment in the config's daemon: section) it also registers with a rendezvous relay and serves clients paired through it: each session is TLS 1.3 end to end with the daemon's own certificate (<data-dir>/cloud-identity.crt, made on first use; clients pin its fingerprint: tether daemon fingerprint), then the usual token check. The registration is kept up with backoff; a refused credential is retried 3 times, then logged and given up while the daemon keeps serving. The ready line then has "relay":{"url","environment","fingerprint"}.`;
  static override examples = [
    { description: 'Serve this machine on its Unix socket and 127.0.0.1:7337', command: '<%= config.bin %> daemon serve' },
    { description: 'Unix socket only (what the CLI starts in the background for "local")', command: '<%= config.bin %> daemon serve --listen none' },
    { description: 'A separate daemon with its own state', command: '<%= config.bin %> daemon serve --data-dir /srv/tether --listen 0.0.0.0:7337' },
    { description: 'Behind NAT: register with a relay (the credential from tether relay enroll in <data-dir>/relay-credential)', command: '<%= config.bin %> daemon serve --relay wss://relay.example:8443 --environment gpu1' },
  ];
  static override flags = {
    listen: Flags.string({
      description: 'also listen on this address: host:port, or another Unix socket path; "none" for the Unix socket only',
      default: '127.0.0.1:7337',
    }),
    'data-dir': Flags.string({ description: 'the daemon state directory (default: $XDG_STATE_HOME/tether, i.e. ~/.local/state/tether)' }),
    'token-file': Flags.string({ description: 'the token file (default: <data-dir>/token, created mode 0600 on first start)' }),
    relay: Flags.string({ description: 'also serve through this rendezvous relay (wss://HOST:PORT), for a machine clients cannot reach directly', dependsOn: ['environment'] }),
    environment: Flags.string({ description: 'the environment to register at the relay (enrolled by its operator)', dependsOn: ['relay'] }),
    'relay-credential-file': Flags.string({ description: "the environment's enrolment credential (default: <data-dir>/relay-credential, mode 0600)" }),
    'relay-ca-file': Flags.string({ description: 'trust this CA (PEM) for a relay with a private certificate' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonServe);
    this.useConfig(flags.config);
    // The daemon imports the packages themselves, not the client runtime bundle: its plugins share them.
    const files = daemonFiles(resolve(flags['data-dir'] ?? tetherPaths().stateDir));
    const log = (entry: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...entry })}\n`);

    const { loadConfig } = await import('../../config/configFile.js');
    const config = await loadConfig(this.configFile().path, this.configFile().explicit);
    const declared = declaredKernelPlugins(this.config.getPluginsList()).filter(isDaemonPlugin);
    const { loaded, failed } = await importKernelPlugins(declared);
    for (const failure of failed) log({ level: 'warn', msg: 'plugin could not be imported', plugin: failure.declared.module, error: failure.reason });
    const configs = { '@tether/plugin-filesystem': { dataDir: files.dataDir }, ...config.plugins };
    // A plugin config its schema refuses stops the daemon here, rather than a daemon without that backend.
    const fault = await pluginConfigFault(loaded, configs);
    if (fault) {
      throw new CliError('CONFIG_INVALID', `${config.path}: ${fault.message}`, {
        hint: `fix the config of ${fault.plugin} under plugins: in ${config.path} (see that plugin's README for its fields)`,
      });
    }
    const relaySettings = relaySettingsOf(flags, config.daemon);

    const { startDaemon } = await import('@tether/transport-ws');
    const extra = flags.listen === 'none' || resolve(flags.listen) === files.socket || flags.listen === `unix:${files.socket}` ? [] : [flags.listen];
    let daemon;
    try {
      daemon = await startDaemon({
        listen: files.socket,
        alsoListen: extra,
        dataDir: files.dataDir,
        tokenFile: flags['token-file'],
        plugins: pluginEntries(loaded, configs),
        ...(config.daemon.default_backend !== undefined ? { defaultBackend: config.daemon.default_backend } : {}),
        handleSignals: true,
        log,
      });
    } catch (error) {
      const { isTetherError } = await import('@tether/core');
      if (!isTetherError(error, 'STORE_LOCKED') || (extra.length === 0 && !relaySettings)) throw error;
      return this.#serveForRunningDaemon(files, extra, flags['token-file'], log, error, relaySettings);
    }
    let relay;
    try {
      // Sessions through the relay are handed to this daemon's listener, not dialled through its socket.
      relay = relaySettings ? await startDaemonRelay(files, relaySettings, log, daemon) : undefined;
    } catch (error) {
      await daemon.close();
      throw error;
    }
    void daemon.closed.then(() => relay?.agent.close());
    await writeFile(files.pid, `${process.pid}\n`, { mode: 0o600 });
    const records = await recordPorts(extra, daemon.tokenFile, log);
    log({ level: 'info', msg: 'serving', pid: process.pid, urls: daemon.urls, plugins: daemon.kernel.plugins.loaded, token_file: daemon.tokenFile ?? null, port_records: records });
    this.emit({ ok: true, pid: process.pid, data_dir: files.dataDir, socket: files.socket, urls: daemon.urls, token_file: daemon.tokenFile ?? null, ...relayJson(relay, relaySettings) });
    await daemon.closed;
    await removeRecords(records);
    // Leave a pid file that a newer daemon has written since.
    if ((await readFile(files.pid, 'utf8').catch(() => '')).trim() === String(process.pid)) await rm(files.pid, { force: true });
  }

  /**
   * Another daemon holds the data dir (the one started for "local" listens on the Unix socket
   * only): serve --listen for it, so `machine up` and the ssh transport reach it on its TCP port.
   */
  async #serveForRunningDaemon(
    files: DaemonFiles,
    listen: string[],
    tokenFile: string | undefined,
    log: (entry: Record<string, unknown>) => void,
    locked: unknown,
    relaySettings: DaemonRelaySettings | undefined,
  ): Promise<void> {
    const { attachToDaemon } = await import('../../daemonAttach.js');
    let attached;
    try {
      attached = await attachToDaemon({ files, listen, tokenFile, log });
    } catch (error) {
      log({ level: 'warn', msg: 'another daemon holds the data dir, and it does not answer on its socket', socket: files.socket, error: error instanceof Error ? error.message : String(error) });
      throw locked;
    }
    // Sessions through the relay go to the running daemon's socket, like its own clients.
    const relay = relaySettings ? await startDaemonRelay(files, relaySettings, log) : undefined;
    void attached.closed.then(() => relay?.agent.close());
    const stop = () => void attached.close();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    const pid = (await readFile(files.pid, 'utf8').catch(() => '')).trim();
    const attachedTo = /^\d+$/.test(pid) ? Number(pid) : null;
    const records = await recordPorts(listen, tokenFile ?? files.token, log);
    log({ level: 'info', msg: 'another daemon serves this data dir: serving it on the listen address', pid: process.pid, daemon_pid: attachedTo, urls: attached.urls, port_records: records });
    this.emit({ ok: true, pid: process.pid, data_dir: files.dataDir, socket: files.socket, urls: attached.urls, token_file: tokenFile ?? files.token, attached_to: attachedTo, ...relayJson(relay, relaySettings) });
    await attached.closed;
    await removeRecords(records);
  }
}

/**
 * Records, for each TCP port served, this process's pid and the token file (`portRecord`), so a
 * client reaching the port over SSH reads the right token whatever this daemon's environment:
 * in `$TETHER_PORT_RECORD_DIR` (set by `machine up` to the SSH login's state directory), else in
 * this daemon's state directory. Best effort: a record that cannot be written is logged.
 */
async function recordPorts(listen: readonly string[], tokenFile: string | undefined, log: (entry: Record<string, unknown>) => void): Promise<string[]> {
  if (tokenFile === undefined || /[\n\r]/.test(tokenFile)) return [];
  const dir = resolve(process.env['TETHER_PORT_RECORD_DIR'] || tetherPaths().stateDir);
  const records: string[] = [];
  for (const address of listen) {
    const port = listenPort(address);
    if (port === undefined) continue;
    const file = portRecord(dir, port);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(`${file}.tmp`, `${process.pid}\n${resolve(tokenFile)}\n`, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
      records.push(file);
    } catch (error) {
      log({ level: 'warn', msg: 'could not record the token file for the port', file, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return records;
}

/** Removes the records that still name this process (a newer daemon on the port may have replaced one). */
async function removeRecords(records: readonly string[]): Promise<void> {
  for (const file of records) {
    const pid = (await readFile(file, 'utf8').catch(() => '')).split('\n')[0];
    if (pid === String(process.pid)) await rm(file, { force: true });
  }
}
