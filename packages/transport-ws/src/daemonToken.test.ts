import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTetherError } from '@tether/core';
import { loadOrCreateToken, readToken, TokenVerifier } from './daemonToken.js';
import { removeTempDirs, tempDir } from '../test/support.js';

afterAll(removeTempDirs);

describe('the token file', () => {
  it('is created on first use with 32 random bytes as hex, mode 0600, and read back after', async () => {
    const file = join(await tempDir(), 'token');
    const first = await loadOrCreateToken(file);
    expect(first.created).toBe(true);
    expect(first.token).toMatch(/^[0-9a-f]{64}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toBe(first.token);
    expect(await loadOrCreateToken(file)).toEqual({ token: first.token, created: false });
    expect((await loadOrCreateToken(join(await tempDir(), 'token'))).token).not.toBe(first.token);
  });

  it('is refused when group or others may read it, without showing the token', async () => {
    const file = join(await tempDir(), 'token');
    const secret = 'f'.repeat(40);
    await writeFile(file, secret, { mode: 0o640 });
    await chmod(file, 0o640);
    const error = await readToken(file).catch((e: unknown) => e);
    expect(isTetherError(error, 'PERMISSION_DENIED')).toBe(true);
    expect((error as Error).message).toMatch(/accessible by group or others \(mode 0640\); run chmod 600/);
    expect((error as Error).message).not.toContain(secret);
    await chmod(file, 0o604);
    expect(isTetherError(await loadOrCreateToken(file).catch((e: unknown) => e), 'PERMISSION_DENIED')).toBe(true);
    await chmod(file, 0o600);
    expect(await readToken(file)).toBe(secret);
  });

  it('is refused when empty or too short', async () => {
    const file = join(await tempDir(), 'token');
    await writeFile(file, 'short\n', { mode: 0o600 });
    expect(isTetherError(await readToken(file).catch((e: unknown) => e), 'INVALID_ARGUMENT')).toBe(true);
  });
});

describe('TokenVerifier', () => {
  const token = 'a1'.repeat(32);
  const verifier = new TokenVerifier(token);

  it('accepts exactly "Bearer <token>"', () => {
    expect(verifier.verifyAuthorization(`Bearer ${token}`)).toBe(true);
    expect(verifier.verifyAuthorization(`bearer ${token}`)).toBe(true);
  });

  it('refuses anything else', () => {
    for (const header of [undefined, '', 'Bearer', `Bearer ${token}0`, `Bearer ${token.slice(1)}`, token, `Basic ${token}`, `Bearer ${token} extra`]) {
      expect(verifier.verifyAuthorization(header)).toBe(false);
    }
  });

  it('refuses to be built with a weak token', () => {
    expect(() => new TokenVerifier('')).toThrow(/at least 16/);
    expect(() => new TokenVerifier('has a space in the middle')).toThrow(/without spaces/);
  });
});
