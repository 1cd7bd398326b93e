import { createHmac, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { KnownHosts, hostKeyFingerprint, hostKeyName } from './knownHosts.js';

function newKey(type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519'): { line: string; blob: Buffer } {
  const { public: line } = ssh2.utils.generateKeyPairSync(type, type === 'rsa' ? { bits: 1024 } : type === 'ecdsa' ? { bits: 256 } : {});
  const [keyType, base64] = line.split(' ');
  return { line: `${keyType} ${base64}`, blob: Buffer.from(base64!, 'base64') };
}

/** A hashed host field, as `ssh-keygen -H` writes it: |1|base64(salt)|base64(HMAC-SHA1(salt, name)). */
function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('KnownHosts', () => {
  const a = newKey();
  const b = newKey();

  it('files keys under host on port 22 and [host]:port elsewhere', () => {
    expect(hostKeyName('gpu1', 22)).toBe('gpu1');
    expect(hostKeyName('gpu1', 2222)).toBe('[gpu1]:2222');
    expect(hostKeyName('gpu1', 2222, 'alias')).toBe('alias');
    const known = KnownHosts.parse(`gpu1 ${a.line}\n[gpu2]:2222 ${b.line}\n`);
    expect(known.verify('gpu1', a.blob)).toMatchObject({ status: 'trusted', line: 1 });
    expect(known.verify('[gpu1]:2222', a.blob)).toMatchObject({ status: 'unknown' });
    expect(known.verify('[gpu2]:2222', b.blob)).toMatchObject({ status: 'trusted', line: 2 });
    expect(known.verify('gpu2', b.blob)).toMatchObject({ status: 'unknown' });
  });

  it('matches hashed names, comma lists, wildcards and negations, ignoring case', () => {
    const known = KnownHosts.parse(
      [`${hashed('[10.0.0.5]:2200')} ${a.line}`, `alpha,BETA ${a.line} comment here`, `*.corp,!bastion.corp ${b.line}`].join('\n'),
    );
    expect(known.verify('[10.0.0.5]:2200', a.blob).status).toBe('trusted');
    expect(known.verify('10.0.0.5', a.blob).status).toBe('unknown');
    expect(known.verify('beta', a.blob).status).toBe('trusted');
    expect(known.verify('Node1.Corp', b.blob).status).toBe('trusted');
    expect(known.verify('bastion.corp', b.blob).status).toBe('unknown');
  });

  it('tells a changed key (same type, other key) from an unknown key type', () => {
    const ecdsa = newKey('ecdsa');
    const known = KnownHosts.parse(`# comment\n\ngpu1 ${a.line}\n`, '/k');
    expect(known.verify('gpu1', b.blob)).toEqual({ status: 'changed', offending: [{ file: '/k', line: 3 }] });
    expect(known.verify('gpu1', ecdsa.blob)).toEqual({ status: 'unknown', knownTypes: ['ssh-ed25519'] });
    expect(known.keyTypes('gpu1')).toEqual(['ssh-ed25519']);
  });

  it('refuses @revoked keys, ignores @cert-authority lines and skips malformed ones', () => {
    const known = KnownHosts.parse([`@revoked * ${a.line}`, `gpu1 ${a.line}`, `@cert-authority gpu1 ${b.line}`, 'gpu1 ssh-ed25519 not*base64', `gpu1 ssh-rsa ${a.line.split(' ')[1]}`].join('\n'), '/k');
    expect(known.verify('gpu1', a.blob)).toEqual({ status: 'revoked', file: '/k', line: 1 });
    expect(known.verify('gpu1', b.blob)).toEqual({ status: 'changed', offending: [{ file: '/k', line: 2 }] });
  });

  it('loads several files, a missing one counting as empty', async () => {
    const known = await KnownHosts.load(['/no/such/known_hosts']);
    expect(known.verify('gpu1', a.blob).status).toBe('unknown');
  });

  it("prints fingerprints as OpenSSH does", () => {
    expect(hostKeyFingerprint(a.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
