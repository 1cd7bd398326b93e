import { readFile } from 'node:fs/promises';
import ssh2, { type IdentityCallback, type ParsedKey } from 'ssh2';

/** The identity files of a host, read and sorted into what can be offered and what cannot. */
export interface SshIdentities {
  /** Private keys that can sign now, with their files. */
  readonly usable: ReadonlyArray<{ readonly file: string; readonly key: ParsedKey }>;
  /** Files holding a passphrase-protected key: usable only through the agent. */
  readonly encrypted: readonly string[];
  /** Public halves of every identity file (from the key or `<file>.pub`), for `IdentitiesOnly`. */
  readonly publicKeys: readonly Buffer[];
}

/** Reads the identity files; missing or unreadable ones are skipped, as OpenSSH does. */
export async function loadIdentities(files: readonly string[]): Promise<SshIdentities> {
  const usable: Array<{ file: string; key: ParsedKey }> = [];
  const encrypted: string[] = [];
  const publicKeys: Buffer[] = [];
  for (const file of files) {
    const data = await readFile(file).catch(() => undefined);
    if (data === undefined) continue;
    const parsed = ssh2.utils.parseKey(data);
    const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
    if (key instanceof Error) {
      if (/encrypted|passphrase/i.test(key.message)) {
        encrypted.push(file);
        const pub = await publicHalf(`${file}.pub`);
        if (pub) publicKeys.push(pub);
      }
      continue;
    }
    if (key === undefined || !key.isPrivateKey()) continue;
    usable.push({ file, key });
    publicKeys.push(key.getPublicSSH());
  }
  return { usable, encrypted, publicKeys };
}

async function publicHalf(file: string): Promise<Buffer | undefined> {
  const data = await readFile(file).catch(() => undefined);
  if (data === undefined) return undefined;
  const key = ssh2.utils.parseKey(data);
  return key instanceof Error || Array.isArray(key) ? undefined : key.getPublicSSH();
}

/** An agent that lists only the keys `allow` accepts (`IdentitiesOnly`: the configured identities). */
export class FilteredAgent extends ssh2.OpenSSHAgent {
  readonly #allow: (key: ParsedKey) => boolean;

  constructor(socketPath: string, allow: (key: ParsedKey) => boolean) {
    super(socketPath);
    this.#allow = allow;
  }

  override getIdentities(callback: IdentityCallback<ParsedKey>): void {
    // The OpenSSH agent lists parsed keys.
    super.getIdentities((error, keys) => callback(error, (keys as ParsedKey[] | undefined)?.filter((key) => this.#allow(key))));
  }
}
