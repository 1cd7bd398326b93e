import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RelayAgentOptions } from '@tether/transport-cloud';
import type { LogEntry } from '@tether/transport-ws';
import { CliError } from './cliError.js';
import type { DaemonFiles } from './paths.js';

/** How `daemon serve` registers with a relay (flags, or the config's `daemon:` section). */
export interface DaemonRelaySettings {
  readonly relay: string;
  readonly environment: string;
  /** Default `<data-dir>/relay-credential`. */
  readonly credentialFile?: string;
  readonly relayCaFile?: string;
}

/** The credential as the operator may hand it over once, to be stored (0600) in the credential file. */
export const CREDENTIAL_ENV = 'TETHER_RELAY_CREDENTIAL';

/**
 * Registers the daemon serving `files` with a relay: loads (or creates) the daemon's TLS identity
 * in its data dir, reads the enrolment credential (mode 0600; stored there from
 * $TETHER_RELAY_CREDENTIAL when the file does not exist yet) and starts a `RelayAgent` whose
 * sessions are handed to `listener` (the daemon in this process), or without one go to the
 * daemon's Unix socket (a daemon in another process).
 */
export async function startDaemonRelay(
  files: DaemonFiles,
  settings: DaemonRelaySettings,
  log: (entry: LogEntry) => void,
  listener?: RelayAgentOptions['listener'],
) {
  const cloud = await import('@tether/transport-cloud');
  const { readToken } = await import('@tether/transport-ws');
  const credentialFile = settings.credentialFile ?? join(files.dataDir, 'relay-credential');
  const given = process.env[CREDENTIAL_ENV];
  if (given !== undefined && given.trim().length > 0) await storeCredential(credentialFile, given.trim(), log);
  let credential: string;
  try {
    credential = await readToken(credentialFile);
  } catch (error) {
    if ((error as { code?: string }).code !== 'PATH_NOT_FOUND') throw error;
    throw new CliError('UNAUTHORIZED', `unauthorized: no relay credential for environment ${settings.environment} at ${credentialFile}`, {
      hint: `on the relay: tether relay enroll --environment ${settings.environment} --out FILE; copy FILE to ${credentialFile} (mode 0600), or pass it once as ${CREDENTIAL_ENV}`,
      cause: error,
    });
  }
  const identity = await cloud.loadOrCreateIdentity(files.dataDir);
  if (identity.created) log({ level: 'info', msg: 'created the daemon identity', fingerprint: identity.fingerprint, cert: identity.certFile });
  let relayCa: Buffer | undefined;
  if (settings.relayCaFile !== undefined) {
    const { readFile } = await import('node:fs/promises');
    relayCa = await readFile(settings.relayCaFile);
  }
  const agent = cloud.RelayAgent.start({
    relay: settings.relay,
    environment: settings.environment,
    credential,
    identity,
    ...(listener ? { listener } : { target: files.socket }),
    relayCa,
    log,
  });
  return { agent, fingerprint: identity.fingerprint, relay: cloud.relayBase(settings.relay) };
}

async function storeCredential(path: string, credential: string, log: (entry: LogEntry) => void): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const file = await open(path, 'wx', 0o600);
    try {
      await file.writeFile(`${credential}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    log({ level: 'info', msg: 'stored the relay credential', file: path });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    log({ level: 'warn', msg: `${CREDENTIAL_ENV} ignored: a relay credential is already stored`, file: path });
  }
}
