import { open, readFile, rename, unlink } from 'node:fs/promises';
import { z } from 'zod';
import { TetherError } from '@tether/core';
import { checkName, credentialHash, credentialMatches, newCredential, type CredentialKind } from './credentials.js';

const Entry = z.object({
  credential_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  enrolled_at: z.string(),
  revoked_at: z.string().nullable().default(null),
  last_seen: z.string().nullable().default(null),
});
const RegistryFile = z.object({
  version: z.literal(1),
  environments: z.record(z.string(), Entry).default({}),
  clients: z.record(z.string(), Entry).default({}),
});

/** An enrolled environment or client, as the registry keeps it. */
export type RegistryEntry = z.infer<typeof Entry>;

/** How a presented credential fares. `revoked`: it is the credential of a revoked enrolment. */
export type CredentialVerdict = 'ok' | 'revoked' | 'wrong';

/**
 * The relay's registry of environments (daemons) and clients with their credentials, persisted
 * as one JSON file (mode 0600) in the relay's data dir. Only credential hashes are stored. Every
 * change is written atomically (a temporary file, fsync, rename); writes are serialised and
 * coalesced, so a burst of last-seen updates costs one write.
 */
export class RelayRegistry {
  readonly path: string;
  #data: z.infer<typeof RegistryFile>;
  #clientsByHash = new Map<string, string>();
  #writing: Promise<void> | undefined;
  #dirty = false;

  private constructor(path: string, data: z.infer<typeof RegistryFile>) {
    this.path = path;
    this.#data = data;
    this.#index();
  }

  /** Opens the registry at `path`, or starts an empty one. A damaged file fails with `STORE_CORRUPT` and is left as it is. */
  static async open(path: string): Promise<RelayRegistry> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new RelayRegistry(path, { version: 1, environments: {}, clients: {} });
      throw new TetherError('PERMISSION_DENIED', `cannot read the relay registry ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { path }, { cause: error });
    }
    let parsed;
    try {
      parsed = RegistryFile.safeParse(JSON.parse(text));
    } catch (error) {
      throw new TetherError('STORE_CORRUPT', `the relay registry ${path} is not valid JSON; restore it from a backup or move it away to start empty`, { path }, { cause: error });
    }
    if (!parsed.success) {
      throw new TetherError('STORE_CORRUPT', `the relay registry ${path} is not a tether relay registry (${parsed.error.issues[0]?.message ?? 'bad shape'})`, { path });
    }
    return new RelayRegistry(path, parsed.data);
  }

  /** Enrols `name` with a new credential, returned once. An enrolled (not revoked) name needs `rotate`, which replaces its credential. */
  async enroll(kind: CredentialKind, name: string, options: { rotate?: boolean } = {}): Promise<{ credential: string; rotated: boolean }> {
    checkName(name, `the ${kind} name`);
    const table = this.#table(kind);
    const existing = table[name];
    if (existing && existing.revoked_at === null && !options.rotate) {
      throw new TetherError('PATH_EXISTS', `${kind} ${name} is already enrolled; revoke it first, or rotate its credential`, { kind, name });
    }
    const { credential, sha256 } = newCredential(kind);
    table[name] = { credential_sha256: sha256, enrolled_at: new Date().toISOString(), revoked_at: null, last_seen: existing?.last_seen ?? null };
    this.#index();
    await this.#save();
    return { credential, rotated: existing !== undefined && existing.revoked_at === null };
  }

  /** Revokes `name`'s credential. Returns false when it was not enrolled (or already revoked). */
  async revoke(kind: CredentialKind, name: string): Promise<boolean> {
    checkName(name, `the ${kind} name`);
    const entry = this.#table(kind)[name];
    if (!entry || entry.revoked_at !== null) return false;
    entry.revoked_at = new Date().toISOString();
    this.#index();
    await this.#save();
    return true;
  }

  /** Checks an environment's credential. */
  verifyEnvironment(name: string, credential: string | undefined): CredentialVerdict {
    const entry = this.#data.environments[name];
    if (!entry || credential === undefined || !credentialMatches(credential, entry.credential_sha256)) return 'wrong';
    return entry.revoked_at === null ? 'ok' : 'revoked';
  }

  /** The client a credential belongs to, or why not. The lookup is by the credential's hash. */
  verifyClient(credential: string | undefined): { verdict: CredentialVerdict; client?: string } {
    if (credential === undefined) return { verdict: 'wrong' };
    const client = this.#clientsByHash.get(credentialHash(credential));
    if (client === undefined) return { verdict: 'wrong' };
    return { verdict: this.#data.clients[client]!.revoked_at === null ? 'ok' : 'revoked', client };
  }

  /** The environment's entry, if it was ever enrolled. */
  environment(name: string): RegistryEntry | undefined {
    return this.#data.environments[name];
  }

  /** Every environment ever enrolled, by name. */
  environments(): ReadonlyArray<readonly [string, RegistryEntry]> {
    return Object.entries(this.#data.environments).sort(([a], [b]) => a.localeCompare(b));
  }

  /** Notes that an environment was seen now; persisted with the next write (`flush`). */
  seen(name: string, at = new Date()): void {
    const entry = this.#data.environments[name];
    if (entry) entry.last_seen = at.toISOString();
  }

  /** Writes pending changes (last-seen times). */
  flush(): Promise<void> {
    return this.#save();
  }

  #table(kind: CredentialKind): Record<string, RegistryEntry> {
    return kind === 'environment' ? this.#data.environments : this.#data.clients;
  }

  #index(): void {
    this.#clientsByHash = new Map(Object.entries(this.#data.clients).map(([name, entry]) => [entry.credential_sha256, name]));
  }

  /** One write at a time; changes made while one runs go into the next. */
  #save(): Promise<void> {
    this.#dirty = true;
    this.#writing ??= (async () => {
      try {
        while (this.#dirty) {
          this.#dirty = false;
          await writeAtomically(this.path, `${JSON.stringify(this.#data, null, 2)}\n`);
        }
      } finally {
        this.#writing = undefined;
      }
    })();
    return this.#writing;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new TetherError('PERMISSION_DENIED', `cannot write the relay registry ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { path }, { cause: error });
  }
}
