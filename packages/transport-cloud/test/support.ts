// Helpers shared by this package's tests: temp dirs, a relay with an enrolled environment and
// client, a daemon registered with it, and TCP proxies the tests can cut.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import type { PluginEntry, RemoteMachine } from '@tether/core';
import { readToken, startDaemon, type Daemon, type DaemonOptions } from '@tether/transport-ws';
import { cloudMachine, loadOrCreateIdentity, RelayAgent, RelayServer, type DaemonIdentity, type RelayAgentOptions, type RelayServerOptions } from '../src/index.js';

export { eventually, rejection } from '@tether/core/testing';

/** The first-party backends, files confined to `root`, no nvidia-smi. */
export function backends(root: string): PluginEntry[] {
  return [processPlugin, { plugin: filesystemPlugin, config: { roots: [root] } }, { plugin: gpuPlugin, config: { command: 'tether-no-nvidia-smi' } }];
}

const dirs: string[] = [];
/** A temp dir removed by `removeTempDirs` (call it in afterAll). */
export async function tempDir(prefix = 'tether-cloud-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export async function removeTempDirs(): Promise<void> {
  // Retried: a supervisor a test left running may still write in its daemon's dir (until it sees
  // the dir gone, and ends its command).
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })));
}

/** A relay on 127.0.0.1 with its own data dir. */
export async function startRelay(options: Partial<RelayServerOptions> = {}): Promise<RelayServer> {
  return RelayServer.start({ listen: '127.0.0.1:0', dataDir: join(await tempDir('tether-relay-'), 'relay'), pingIntervalMs: 2_000, ...options });
}

/**
 * A daemon on a Unix socket of its own, with its identity and an agent registered as `environment`
 * with `relay`: the agent hands its sessions to the daemon (`listener`), or with `dial` connects
 * each to the daemon's socket (`target`, as for a daemon in another process).
 */
export interface CloudDaemon {
  readonly daemon: Daemon;
  readonly identity: DaemonIdentity;
  readonly token: string;
  readonly credential: string;
  readonly agent: RelayAgent;
  /** Starts the agent again (after `agent.close()`), e.g. with another relay address. */
  restartAgent(options?: Partial<RelayAgentOptions>): Promise<RelayAgent>;
  close(): Promise<void>;
}

export async function startCloudDaemon(
  relay: RelayServer,
  environment: string,
  options: { root: string; relayUrl?: string; agent?: Partial<RelayAgentOptions>; credential?: string; daemon?: Partial<DaemonOptions>; dial?: boolean },
): Promise<CloudDaemon> {
  const dir = await tempDir('tether-cloud-daemon-');
  const daemon = await startDaemon({ listen: join(dir, 'daemon.sock'), dataDir: join(dir, 'data'), plugins: backends(options.root), ...options.daemon });
  const identity = await loadOrCreateIdentity(join(dir, 'data'));
  const credential = options.credential ?? (await relay.enroll('environment', environment)).credential;
  const agentOptions = (extra: Partial<RelayAgentOptions> = {}): RelayAgentOptions => ({
    relay: options.relayUrl ?? relay.url,
    environment,
    credential,
    identity,
    ...(options.dial ? { target: join(dir, 'daemon.sock') } : { listener: daemon }),
    backoff: { initialDelayMs: 20, maxDelayMs: 200 },
    ...options.agent,
    ...extra,
  });
  const result = {
    daemon,
    identity,
    token: await readToken(daemon.tokenFile!),
    credential,
    agent: RelayAgent.start(agentOptions()),
    async restartAgent(extra?: Partial<RelayAgentOptions>) {
      result.agent.close();
      result.agent = RelayAgent.start(agentOptions(extra));
      return result.agent;
    },
    async close() {
      result.agent.close();
      await daemon.close();
    },
  };
  await result.agent.when('registered');
  return result;
}

/** A RemoteMachine through `relayUrl` to `cloud`'s environment, with a client credential enrolled at `relay`. */
export async function clientOf(
  relay: RelayServer,
  environment: string,
  cloud: CloudDaemon,
  options: { relayUrl?: string; client?: string; fingerprint?: string; giveUpAfterMs?: number } = {},
): Promise<RemoteMachine> {
  const client = options.client ?? `client-${Math.random().toString(36).slice(2, 10)}`;
  const { credential } = await relay.enroll('client', client);
  return cloudMachine({
    relay: options.relayUrl ?? relay.url,
    environment,
    relayToken: credential,
    token: cloud.token,
    fingerprint: options.fingerprint ?? cloud.identity.fingerprint,
    name: environment,
    reconnect: { initialDelayMs: 10, maxDelayMs: 100, giveUpAfterMs: options.giveUpAfterMs ?? 20_000 },
  });
}
