import { homedir } from 'node:os';
import { TetherError } from '@tether/core';
import { hostKeyFingerprint, keyTypeLabel, sshKeyType, type HostKeyVerdict } from './knownHosts.js';
import { shellQuote } from './shellQuote.js';

/** What the refusal of a host key needs to say how to fix it. */
export interface HostKeyContext {
  /** The name the key is filed under (`host` or `[host]:port`). */
  readonly name: string;
  readonly hostName: string;
  readonly port: number;
  /** How the user reaches the host with OpenSSH (`gpu1`, `-p 2222 root@10.0.0.5`). */
  readonly sshArgs: string;
  /** The file a new key should be appended to. */
  readonly knownHostsFile: string;
  /** True when the host is reached through a jump host (ssh-keyscan from here may not reach it). */
  readonly viaJump: boolean;
  /** True when a `HostKeyAlias` names the key (ssh-keyscan would file it under the wrong name). */
  readonly aliased: boolean;
}

/**
 * The error for a host key the known_hosts files do not vouch for, or `undefined` for a trusted
 * one. Never trusts on first use: an unknown key is refused with its fingerprint and the command
 * to trust it; a changed key is refused loudly, like OpenSSH's warning; a revoked key is refused.
 * All are `UNAUTHORIZED`, told apart by `details.reason`: `host-key-unknown`,
 * `host-key-changed`, `host-key-revoked`.
 */
export function hostKeyError(verdict: HostKeyVerdict, key: Buffer, context: HostKeyContext): TetherError | undefined {
  if (verdict.status === 'trusted') return undefined;
  const fingerprint = hostKeyFingerprint(key);
  const keyType = sshKeyType(key);
  const label = keyTypeLabel(keyType);
  const file = displayPath(context.knownHostsFile);
  const details = { host: context.name, fingerprint, keyType };

  if (verdict.status === 'revoked') {
    return new TetherError(
      'UNAUTHORIZED',
      `unauthorized: the ${label} host key of ${context.name} (${fingerprint}) is marked @revoked in ${displayPath(verdict.file)}:${verdict.line}; refusing to connect`,
      { ...details, reason: 'host-key-revoked' },
    );
  }

  if (verdict.status === 'changed') {
    const where = verdict.offending.map((o) => `${displayPath(o.file)}:${o.line}`).join(', ');
    const first = verdict.offending[0]!;
    const remove = `ssh-keygen -R ${shellQuote(context.name)} -f ${shellQuote(displayPath(first.file), true)}`;
    return new TetherError(
      'UNAUTHORIZED',
      [
        `unauthorized: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for ${context.name}!`,
        'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY: someone could be eavesdropping on you right now',
        '(man-in-the-middle attack), or the host key has just been changed.',
        `The ${label} key fingerprint the host sent is ${fingerprint}. Offending key in ${where}.`,
        `Refusing to connect. If you know the key was changed on purpose, remove the old one with: ${remove}`,
        `then trust the new one (after checking its fingerprint).`,
      ].join(' '),
      { ...details, reason: 'host-key-changed', offending: verdict.offending, command: remove },
    );
  }

  const scan = `ssh-keyscan${context.port === 22 ? '' : ` -p ${context.port}`} ${shellQuote(context.hostName)} >> ${shellQuote(file, true)}`;
  const direct = !context.viaJump && !context.aliased;
  const known = verdict.knownTypes.length > 0 ? ` (it is known only with ${verdict.knownTypes.map(keyTypeLabel).join(', ')} keys)` : '';
  return new TetherError(
    'UNAUTHORIZED',
    [
      `unauthorized: the host key of ${context.name} is not known${known}: ${label} key fingerprint ${fingerprint}.`,
      "tether never trusts a host key on first use. If that fingerprint is the host's, trust it",
      direct ? `with \`${scan}\`, or` : '',
      `by connecting once with \`ssh ${context.sshArgs}\` and answering yes.`,
    ]
      .filter(Boolean)
      .join(' '),
    { ...details, reason: 'host-key-unknown', command: direct ? scan : `ssh ${context.sshArgs}`, knownHostsFile: context.knownHostsFile },
  );
}

/** `~/…` for paths under the user's real home directory, so commands read as people type them. */
function displayPath(path: string): string {
  const home = homedir();
  return path.startsWith(`${home}/`) ? `~/${path.slice(home.length + 1)}` : path;
}
