import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TetherError } from '@tether/core';

/** The daemon's TLS identity for sessions through a relay: a self-signed certificate, its key, and the pin clients keep. */
export interface DaemonIdentity {
  /** PEM. */
  readonly cert: string;
  /** PEM (PKCS #8). */
  readonly key: string;
  /** `SHA256:<base64>` of the certificate (DER): what a cloud machine's `fingerprint` pins. */
  readonly fingerprint: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** The files of an identity kept in `dir`. */
export function identityFiles(dir: string): { certFile: string; keyFile: string } {
  return { certFile: join(dir, 'cloud-identity.crt'), keyFile: join(dir, 'cloud-identity.key') };
}

/** `SHA256:<base64, unpadded>` of a certificate's DER bytes (PEM or DER accepted). */
export function certificateFingerprint(cert: string | Buffer): string {
  const der = new X509Certificate(cert).raw;
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

/** Parses a pinned fingerprint (`SHA256:<base64>`, or the hex form `openssl x509 -fingerprint -sha256` prints) into the canonical form. */
export function normalizeFingerprint(text: string): string {
  const trimmed = text.trim();
  const b64 = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(trimmed);
  if (b64) return `SHA256:${b64[1]}`;
  const hex = trimmed.replace(/^(sha256 fingerprint=|sha256:)/i, '').replace(/:/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(hex)) return `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=+$/, '')}`;
  throw new TetherError('INVALID_ARGUMENT', 'a fingerprint is SHA256:<base64> (as tether daemon fingerprint prints it) or 64 hex digits', {});
}

/**
 * Loads the daemon's identity from `dir`, or creates it on first use: an ECDSA P-256 key (mode
 * 0600) and a self-signed certificate for it, valid for 100 years (the pin, not a CA or a date,
 * is what clients trust). A key file that group or others can read is refused.
 */
export async function loadOrCreateIdentity(dir: string): Promise<DaemonIdentity & { created: boolean }> {
  const { certFile, keyFile } = identityFiles(dir);
  const existing = await loadIdentity(dir).catch((error: unknown) => {
    if ((error as TetherError).code === 'PATH_NOT_FOUND') return undefined;
    throw error;
  });
  if (existing) return { ...existing, created: false };
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  const { cert, key } = await generateIdentity();
  try {
    await writeNew(keyFile, key, 0o600);
    await writeNew(certFile, cert, 0o644);
  } catch (error) {
    // Another start made it meanwhile: use that one.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return { ...(await loadIdentity(dir)), created: false };
    throw new TetherError('PERMISSION_DENIED', `cannot write the daemon identity in ${dir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { dir }, { cause: error });
  }
  return { cert, key, fingerprint: certificateFingerprint(cert), certFile, keyFile, created: true };
}

/** Loads an existing identity (`PATH_NOT_FOUND` when there is none). */
export async function loadIdentity(dir: string): Promise<DaemonIdentity> {
  const { certFile, keyFile } = identityFiles(dir);
  let cert: string;
  let key: string;
  try {
    const info = await stat(keyFile);
    if ((info.mode & 0o077) !== 0) {
      throw new TetherError('PERMISSION_DENIED', `the daemon key ${keyFile} is accessible by group or others; run chmod 600 ${keyFile}`, { path: keyFile });
    }
    [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  } catch (error) {
    if (error instanceof TetherError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TetherError('PATH_NOT_FOUND', `no daemon identity in ${dir}`, { dir });
    throw new TetherError('PERMISSION_DENIED', `cannot read the daemon identity in ${dir} (${code ?? 'error'})`, { dir }, { cause: error });
  }
  let fingerprint: string;
  try {
    fingerprint = certificateFingerprint(cert);
  } catch (error) {
    throw new TetherError('STORE_CORRUPT', `the daemon certificate ${certFile} is not a certificate; move it and ${keyFile} away to make a new identity (clients will have to trust the new fingerprint)`, { path: certFile }, { cause: error });
  }
  return { cert, key, fingerprint, certFile, keyFile };
}

async function generateIdentity(): Promise<{ cert: string; key: string }> {
  // @peculiar/x509 only encodes the certificate (ASN.1); keys and signatures come from Node's WebCrypto.
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + 100 * 365 * 24 * 3600 * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=tether daemon',
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    keys: keys as never,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { cert: certificate.toString('pem').replace(/\r\n/g, '\n').replace(/\n?$/, '\n'), key };
}

async function writeNew(path: string, text: string, mode: number): Promise<void> {
  const file = await open(path, 'wx', mode);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
}
