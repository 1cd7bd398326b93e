import type { Duplex } from 'node:stream';
import ssh2, { type AnyAuthMethod, type ConnectConfig } from 'ssh2';
import { TetherError, isTetherError } from '@tether/core';
import { hostKeyError } from './hostKeyError.js';
import { KnownHosts, hostKeyAlgorithms, hostKeyName } from './knownHosts.js';
import { describeHost, resolveSshHost, type ResolvedSshHost, type SshConfigOptions } from './resolveSshHost.js';
import { SshConnection } from './sshConnection.js';
import { translateConnectError } from './sshErrors.js';
import { FilteredAgent, loadIdentities } from './loadIdentities.js';
import type { SshTarget } from './sshTarget.js';
import { shellQuote } from './shellQuote.js';

/** How to connect. Everything not given comes from `~/.ssh/config` and OpenSSH's defaults. */
export interface SshConnectOptions extends SshConfigOptions {
  /** The ssh-agent's socket. Default: `IdentityAgent` from the config, else `$SSH_AUTH_SOCK`; `null`: no agent. */
  readonly agent?: string | null;
  /** Private key files to offer instead of the config's `IdentityFile`s (and OpenSSH's default `~/.ssh/id_*`). */
  readonly identityFiles?: readonly string[];
  /** known_hosts files to check host keys against, instead of the config's and OpenSSH's defaults (user and global). */
  readonly knownHostsFiles?: readonly string[];
  /** Time between SSH keepalive requests. Default 15 000 ms. */
  readonly keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection is declared dead. Default 3 (a dead link is noticed within ~45 s). */
  readonly keepaliveCountMax?: number;
  /** Give up on the TCP connection, key exchange and authentication after this long. Default `ConnectTimeout` or 20 000 ms. */
  readonly readyTimeoutMs?: number;
  /** Allow agent forwarding on this connection's sessions. Default: `ForwardAgent` from the config. */
  readonly forwardAgent?: boolean;
  /** Aborts connecting (`ABORTED`). */
  readonly signal?: AbortSignal;
}

export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
export const DEFAULT_KEEPALIVE_COUNT_MAX = 3;
const DEFAULT_READY_TIMEOUT_MS = 20_000;
const MAX_JUMP_DEPTH = 8;
/** ssh2's host key algorithms, strongest first; known key types are moved to the front. */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/**
 * Opens an SSH connection to `target` (`user@host:port` or a `Host` alias of `~/.ssh/config`),
 * through its `ProxyJump` hosts if it has any, authenticating with the ssh-agent and the
 * identity files, and checking the host key against known_hosts (never trusting a new key).
 *
 * Fails with `UNAUTHORIZED` ("unauthorized: …") when no key is accepted, an identity is
 * encrypted and no agent holds it, or the host key is unknown, changed or revoked
 * (`details.reason`: `auth-failed`, `key-encrypted`, `no-identity`, `host-key-unknown`,
 * `host-key-changed`, `host-key-revoked`); with `CONNECTION_LOST` ("connection refused" /
 * "connection reset by peer") when the host cannot be reached; `INVALID_ARGUMENT` for a bad target
 * or an unsupported config (`ProxyCommand`).
 *
 * ```ts
 * const ssh = await sshConnect('gpu1');
 * const { stdout } = await ssh.run('nvidia-smi -L');
 * ssh.close();
 * ```
 */
export async function sshConnect(target: string | SshTarget, options: SshConnectOptions = {}): Promise<SshConnection> {
  const host = await resolveSshHost(target, options);
  return connectHost(host, options, undefined, 0);
}

async function connectHost(host: ResolvedSshHost, options: SshConnectOptions, via: SshConnection | undefined, depth: number): Promise<SshConnection> {
  if (options.signal?.aborted) throw new TetherError('ABORTED', 'connecting was aborted');
  const owned: SshConnection[] = [];
  if (via === undefined && host.proxyJump.length > 0) {
    if (depth >= MAX_JUMP_DEPTH) {
      throw new TetherError('INVALID_ARGUMENT', `ProxyJump goes more than ${MAX_JUMP_DEPTH} hosts deep at ${host.alias} (a loop?)`, { host: host.alias });
    }
    // As `ssh -J a,b target`: a is reached as its own config says, b through a, the target through b.
    try {
      for (const hop of host.proxyJump) {
        const hopHost = await resolveSshHost(hop, options);
        via = await connectHost(hopHost, { ...options, forwardAgent: false }, via, depth + 1);
        owned.push(via);
      }
    } catch (error) {
      for (const jump of owned) jump.close();
      throw error;
    }
  } else if (via === undefined && host.proxyCommand !== undefined) {
    throw new TetherError(
      'INVALID_ARGUMENT',
      `the ssh config gives ${host.alias} a ProxyCommand, which tether does not run; use ProxyJump instead`,
      { host: host.alias, reason: 'proxy-command' },
    );
  }

  try {
    let sock: Duplex | undefined;
    if (via !== undefined) {
      const jump = via;
      sock = await via.forwardOut(host.hostName, host.port).catch((error: unknown) => {
        const cause = isTetherError(error) ? error.message : String(error);
        throw new TetherError('CONNECTION_LOST', `connection refused: the jump host ${jump.where} could not reach ${describeHost(host)} (${cause})`, {}, { cause: error });
      });
    }
    return await handshake(host, options, sock, via !== undefined, owned);
  } catch (error) {
    for (const jump of owned) jump.close();
    throw error;
  }
}

async function handshake(host: ResolvedSshHost, options: SshConnectOptions, sock: Duplex | undefined, viaJump: boolean, owned: SshConnection[]): Promise<SshConnection> {
  const where = describeHost(host);
  const agent = options.agent !== undefined ? options.agent : host.identityAgent !== undefined ? host.identityAgent : (process.env['SSH_AUTH_SOCK'] ?? null);
  const identities = await loadIdentities(options.identityFiles ?? host.identityFiles);

  const methods: AnyAuthMethod[] = [];
  if (agent) {
    const { publicKeys } = identities;
    const agentOrFiltered = host.identitiesOnly ? new FilteredAgent(agent, (key) => publicKeys.some((pub) => pub.equals(key.getPublicSSH()))) : agent;
    methods.push({ type: 'agent', username: host.user, agent: agentOrFiltered });
  }
  for (const { key } of identities.usable) methods.push({ type: 'publickey', username: host.user, key });
  const encrypted = identities.encrypted.map((f) => shellQuote(f)).join(' ');
  if (methods.length === 0) {
    if (identities.encrypted.length > 0) {
      throw new TetherError(
        'UNAUTHORIZED',
        `unauthorized: the key for ${where} is encrypted (${identities.encrypted.join(', ')}) and no ssh-agent is available to use it: start one (\`eval "$(ssh-agent)"\`) and add the key with \`ssh-add ${encrypted}\``,
        { reason: 'key-encrypted', files: identities.encrypted },
      );
    }
    throw new TetherError('UNAUTHORIZED', `unauthorized: no key to offer ${where}: no ssh-agent (SSH_AUTH_SOCK) and no identity file among ${(options.identityFiles ?? host.identityFiles).join(', ') || '(none given)'}`, {
      reason: 'no-identity',
    });
  }
  const offered = [...(agent ? ['the ssh-agent'] : []), ...identities.usable.map((i) => i.file)].join(', ');
  const encryptedHint = identities.encrypted.length === 0 ? '' : `; encrypted keys are used only through the ssh-agent: add them with \`ssh-add ${encrypted}\``;
  const authHint = ` (offered: ${offered})${encryptedHint}`;

  const knownHosts = await KnownHosts.load(options.knownHostsFiles ?? host.knownHostsFiles);
  const keyName = hostKeyName(host.hostName, host.port, host.hostKeyAlias);
  const knownAlgorithms = hostKeyAlgorithms(knownHosts.keyTypes(keyName));
  let hostKeyFailure: TetherError | undefined;
  const sshArgs = host.alias !== host.hostName || host.proxyJump.length > 0 ? host.alias : `${host.port === 22 ? '' : `-p ${host.port} `}${host.user}@${host.hostName}`;

  const config: ConnectConfig = {
    ...(sock ? { sock } : { host: host.hostName, port: host.port }),
    username: host.user,
    ...(agent ? { agent } : {}),
    agentForward: Boolean(agent) && (options.forwardAgent ?? host.forwardAgent),
    authHandler: methods,
    hostVerifier: (key: Buffer) => {
      hostKeyFailure = hostKeyError(knownHosts.verify(keyName, key), key, {
        name: keyName,
        hostName: host.hostName,
        port: host.port,
        sshArgs,
        knownHostsFile: (options.knownHostsFiles ?? host.knownHostsFiles)[0] ?? '~/.ssh/known_hosts',
        viaJump,
        aliased: host.hostKeyAlias !== undefined,
      });
      return hostKeyFailure === undefined;
    },
    ...(knownAlgorithms.length > 0
      ? { algorithms: { serverHostKey: [...knownAlgorithms, ...HOST_KEY_ALGORITHMS.filter((a) => !knownAlgorithms.includes(a))] as never } }
      : {}),
    keepaliveInterval: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
    keepaliveCountMax: options.keepaliveCountMax ?? DEFAULT_KEEPALIVE_COUNT_MAX,
    readyTimeout: options.readyTimeoutMs ?? host.connectTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
  };

  const client = new ssh2.Client();
  return new Promise<SshConnection>((resolve, reject) => {
    let settled = false;
    const settle = (error: TetherError | undefined) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      if (error === undefined) return resolve(new SshConnection(client, host, { owned, agent }));
      client.on('error', () => undefined);
      client.end();
      reject(error);
    };
    let agentFailure = '';
    const onError = (error: Error & { level?: string }) => {
      // ssh2 reports an agent it cannot use, or a key that cannot sign, and goes on with the next method.
      if (error.level === 'agent' || (error.level === 'client-authentication' && /^Error (while )?sign/i.test(error.message))) {
        agentFailure = `; ${error.level === 'agent' ? `the ssh-agent at ${agent} failed` : 'a key could not sign'}: ${error.message}`;
        return;
      }
      settle(hostKeyFailure ?? translateConnectError(error, where, authHint + agentFailure));
    };
    const onClose = () =>
      settle(hostKeyFailure ?? new TetherError('CONNECTION_LOST', `connection reset by peer: ${where} closed the connection before it was ready`));
    const onAbort = () => settle(new TetherError('ABORTED', 'connecting was aborted'));
    client.on('error', onError);
    client.once('close', onClose);
    client.once('ready', () => {
      // ssh2 leaves Nagle on: a small request queued behind an unacknowledged one would wait for
      // the peer's delayed ACK (tens of ms per round trip). OpenSSH turns it off as well.
      client.setNoDelay(true);
      settle(undefined);
    });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      client.connect(config);
    } catch (error) {
      settle(new TetherError('INVALID_ARGUMENT', `cannot connect to ${where}: ${error instanceof Error ? error.message : String(error)}`, {}, { cause: error }));
    }
  });
}
