import { Flags } from '@oclif/core';
import { X509Certificate } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { relayFiles } from '../../relayFiles.js';

/** The first DNS name of a certificate (its subjectAltName, else its CN), for checking it when reached on loopback. */
function certificateName(cert: Buffer): string | undefined {
  try {
    const x509 = new X509Certificate(cert);
    const dns = /(?:^|, )DNS:([^,\s]+)/.exec(x509.subjectAltName ?? '')?.[1];
    return dns ?? /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
  } catch {
    return undefined;
  }
}

export default class RelayServe extends TetherCommand {
  static override summary = 'Run a rendezvous relay for machines behind NAT.';
  static override description = `Daemons that cannot be reached (behind NAT or a firewall) dial out to the relay and register an environment (tether daemon serve --relay URL --environment NAME); clients connect to the relay and are paired with the environment's daemon. The relay forwards bytes only: client and daemon run TLS 1.3 end to end through it, with the daemon's certificate pinned by the client.

State lives in the data dir: registry.json (environments and clients, credential hashes only) and admin-token (the operator's token for enroll, revoke and status; created mode 0600 on first start). Without --tls-cert/--tls-key the relay listens on loopback only (put it behind a TLS proxy, or give it a certificate). Logs JSON lines to stderr; prints {"ok","pid","url","data_dir","admin_token_file"} on stdout once serving. SIGTERM or SIGINT stops it; daemons re-register when it is back.`;
  static override examples = [
    { description: 'A relay on the internet, with its certificate', command: '<%= config.bin %> relay serve --listen 0.0.0.0:8443 --tls-cert relay.crt --tls-key relay.key' },
    { description: 'On loopback, behind a TLS proxy', command: '<%= config.bin %> relay serve --listen 127.0.0.1:8443' },
  ];
  static override flags = {
    listen: Flags.string({ description: 'host:port to listen on (default: 0.0.0.0:8443 with TLS, 127.0.0.1:8443 without)' }),
    'tls-cert': Flags.string({ description: 'the relay certificate (PEM); with --tls-key it serves wss://', dependsOn: ['tls-key'] }),
    'tls-key': Flags.string({ description: 'the relay key (PEM)', dependsOn: ['tls-cert'] }),
    'data-dir': Flags.string({ description: 'the relay state directory (default: $XDG_STATE_HOME/tether/relay)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(RelayServe);
    this.useConfig(flags.config);
    const files = relayFiles(flags['data-dir']);
    const log = (entry: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...entry })}\n`);
    let tls: { cert: Buffer; key: Buffer } | undefined;
    if (flags['tls-cert'] !== undefined && flags['tls-key'] !== undefined) {
      try {
        tls = { cert: await readFile(flags['tls-cert']), key: await readFile(flags['tls-key']) };
      } catch (error) {
        throw new CliError('PATH_NOT_FOUND', `cannot read the TLS certificate or key (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { hint: 'check --tls-cert and --tls-key', cause: error });
      }
    }
    const { RelayServer } = await import('@tether/transport-cloud');
    const relay = await RelayServer.start({ listen: flags.listen ?? (tls ? '0.0.0.0:8443' : '127.0.0.1:8443'), dataDir: files.dataDir, tls, log });
    const tlsName = tls ? certificateName(tls.cert) : undefined;
    await writeFile(files.state, `${JSON.stringify({ url: relay.url, ...(tlsName ? { tls_name: tlsName } : {}), pid: process.pid })}\n`, { mode: 0o600 });
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        log({ level: 'info', msg: 'shutting down', signal });
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        void relay.close().then(resolve);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    this.emit({ ok: true, pid: process.pid, url: relay.url, data_dir: files.dataDir, admin_token_file: relay.adminTokenFile ?? null });
    await stopped;
    // Leave a relay.json that a newer relay has written since.
    const state = await readFile(files.state, 'utf8').catch(() => '');
    if (state.includes(`"pid":${process.pid}}`)) await rm(files.state, { force: true });
  }
}
