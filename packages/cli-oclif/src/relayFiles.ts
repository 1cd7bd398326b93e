import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CliError } from './cliError.js';
import { tetherPaths } from './paths.js';

/** A relay's files in its data dir (default `$XDG_STATE_HOME/tether/relay`). */
export interface RelayFiles {
  readonly dataDir: string;
  /** The operator's token (0600), created by `relay serve` on first start. */
  readonly adminToken: string;
  /** `{"url","pid"}` of the relay serving this data dir, while it runs. */
  readonly state: string;
}

export function relayFiles(dataDir?: string): RelayFiles {
  const dir = resolve(dataDir ?? join(tetherPaths().stateDir, 'relay'));
  return { dataDir: dir, adminToken: join(dir, 'admin-token'), state: join(dir, 'relay.json') };
}

/** Flags of the operator commands that say which relay to talk to. */
export interface RelayTargetFlags {
  readonly 'data-dir'?: string;
  readonly relay?: string;
  readonly 'admin-token-file'?: string;
  readonly 'relay-ca-file'?: string;
}

/**
 * The operator's client for a relay: `--relay URL` with `--admin-token-file` (default: the data
 * dir's), or the relay serving `--data-dir` on this machine (found through its relay.json).
 */
export async function relayAdminFor(flags: RelayTargetFlags): Promise<import('@tether/transport-cloud').RelayAdmin> {
  const files = relayFiles(flags['data-dir']);
  let url = flags.relay;
  let servername: string | undefined;
  if (url === undefined) {
    const state = await readFile(files.state, 'utf8').then(
      (text) => JSON.parse(text) as { url?: unknown; tls_name?: unknown },
      () => undefined,
    );
    // The local relay is reached on loopback; its certificate names the public host.
    if (typeof state?.tls_name === 'string') servername = state.tls_name;
    if (typeof state?.url !== 'string') {
      throw new CliError('CONNECTION_LOST', `connection refused: no relay is serving ${files.dataDir} on this machine`, {
        hint: `start it with tether relay serve --data-dir ${files.dataDir}, or name a remote one with --relay wss://HOST:PORT --admin-token-file FILE`,
      });
    }
    url = state.url;
  }
  const { RelayAdmin } = await import('@tether/transport-cloud');
  const { readToken } = await import('@tether/transport-ws');
  const adminToken = await readToken(flags['admin-token-file'] ?? files.adminToken);
  const ca = flags['relay-ca-file'] === undefined ? undefined : await readFile(flags['relay-ca-file']);
  return new RelayAdmin({ relay: url, adminToken, ca, servername });
}
