import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TetherError } from '@tether/core';

/** What the known_hosts files say about a host's key. */
export type HostKeyVerdict =
  | { readonly status: 'trusted'; readonly file: string; readonly line: number }
  /** No line names the host with this key's type (`knownTypes`: the types it is known with, if any). */
  | { readonly status: 'unknown'; readonly knownTypes: readonly string[] }
  /** The host is known with another key of the same type: the key changed, or someone is in the middle. */
  | { readonly status: 'changed'; readonly offending: readonly KnownHostsLocation[] }
  /** A `@revoked` line lists this key. */
  | { readonly status: 'revoked'; readonly file: string; readonly line: number };

export interface KnownHostsLocation {
  readonly file: string;
  readonly line: number;
}

interface Entry extends KnownHostsLocation {
  readonly marker: 'revoked' | 'cert-authority' | undefined;
  readonly patterns: readonly string[];
  readonly keyType: string;
  readonly key: Buffer;
}

/**
 * The keys of known hosts, from OpenSSH `known_hosts` files: plain and hashed (`|1|salt|hash`)
 * host names, `[host]:port` entries, wildcard and negated patterns, `@revoked` lines. Lines it
 * cannot parse are skipped, as OpenSSH does; `@cert-authority` lines are not used (host
 * certificates are not supported).
 */
export class KnownHosts {
  readonly #entries: readonly Entry[];

  private constructor(entries: readonly Entry[]) {
    this.#entries = entries;
  }

  /** Reads the files in order; a missing file counts as empty. */
  static async load(files: readonly string[]): Promise<KnownHosts> {
    const entries: Entry[] = [];
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        throw new TetherError('PERMISSION_DENIED', `cannot read the known hosts file ${file} (${code ?? String(error)})`, { path: file }, { cause: error });
      }
      entries.push(...parseEntries(text, file));
    }
    return new KnownHosts(entries);
  }

  static parse(text: string, file = 'known_hosts'): KnownHosts {
    return new KnownHosts(parseEntries(text, file));
  }

  /** Judges `key` (the SSH wire encoding of a public key) for the host known as `name` (see `hostKeyName`). */
  verify(name: string, key: Buffer): HostKeyVerdict {
    const keyType = sshKeyType(key);
    const lookup = name.toLowerCase();
    const matching = this.#entries.filter((entry) => entry.marker !== 'cert-authority' && matchesHost(entry.patterns, lookup));
    const revoked = matching.find((entry) => entry.marker === 'revoked' && sameKey(entry.key, key));
    if (revoked) return { status: 'revoked', file: revoked.file, line: revoked.line };
    const plain = matching.filter((entry) => entry.marker === undefined);
    const trusted = plain.find((entry) => sameKey(entry.key, key));
    if (trusted) return { status: 'trusted', file: trusted.file, line: trusted.line };
    const sameType = plain.filter((entry) => entry.keyType === keyType);
    if (sameType.length > 0) return { status: 'changed', offending: sameType.map(({ file, line }) => ({ file, line })) };
    return { status: 'unknown', knownTypes: [...new Set(plain.map((entry) => entry.keyType))] };
  }

  /** Key types the host is known with, so that the key exchange can prefer them (as OpenSSH does). */
  keyTypes(name: string): string[] {
    const lookup = name.toLowerCase();
    return [...new Set(this.#entries.filter((e) => e.marker === undefined && matchesHost(e.patterns, lookup)).map((e) => e.keyType))];
  }
}

/** The name a host's key is filed under: `host` on port 22, `[host]:port` otherwise; `HostKeyAlias` as is. */
export function hostKeyName(hostName: string, port: number, hostKeyAlias?: string): string {
  if (hostKeyAlias !== undefined) return hostKeyAlias;
  return port === 22 ? hostName : `[${hostName}]:${port}`;
}

/** OpenSSH's fingerprint of a public key: `SHA256:` and the unpadded base64 of its SHA-256. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`…). */
export function sshKeyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  if (length > 64 || key.length < 4 + length) return 'unknown';
  return key.subarray(4, 4 + length).toString('latin1');
}

/** `ED25519`, `ECDSA`, `RSA`… as OpenSSH names key types in its messages. */
export function keyTypeLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType.startsWith('ecdsa-sha2-')) return 'ECDSA';
  if (keyType === 'ssh-rsa') return 'RSA';
  if (keyType === 'ssh-dss') return 'DSA';
  return keyType;
}

/** Host key algorithms that produce keys of these types, for the key exchange's preference list. */
export function hostKeyAlgorithms(keyTypes: readonly string[]): string[] {
  return keyTypes.flatMap((type) => (type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type]));
}

function parseEntries(text: string, file: string): Entry[] {
  const entries: Entry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: Entry['marker'];
    if (fields[0]?.startsWith('@')) {
      const name = fields.shift()!;
      if (name === '@revoked') marker = 'revoked';
      else if (name === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    const [hosts, keyType, base64] = fields;
    if (hosts === undefined || keyType === undefined || base64 === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return;
    const key = Buffer.from(base64, 'base64');
    if (sshKeyType(key) !== keyType) return;
    entries.push({ file, line: index + 1, marker, patterns: hosts.split(','), keyType, key });
  });
  return entries;
}

/** OpenSSH's rule: some pattern matches and no negated pattern does. */
function matchesHost(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.startsWith('|1|')) {
      if (hashedMatches(pattern, name)) matched = true;
      continue;
    }
    const negated = pattern.startsWith('!');
    if (wildcardMatches(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function hashedMatches(pattern: string, name: string): boolean {
  const [, , salt, hash] = pattern.split('|');
  if (salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function wildcardMatches(pattern: string, name: string): boolean {
  const lower = pattern.toLowerCase();
  if (!/[*?]/.test(lower)) return lower === name;
  const regex = new RegExp(`^${lower.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return regex.test(name);
}

function sameKey(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
