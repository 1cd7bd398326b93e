import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSshHost, type SshConfigOptions } from './resolveSshHost.js';

let home: string;
let options: SshConfigOptions;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'tether-ssh-config-'));
  await mkdir(join(home, '.ssh', 'conf.d'), { recursive: true });
  await writeFile(
    join(home, '.ssh', 'config'),
    [
      '# the user config',
      'Include conf.d/*.conf',
      'Host gpu*',
      '  HostName %h.lab.example',
      '  User alice',
      '  IdentityFile ~/.ssh/id_gpu',
      '  IdentityFile %d/.ssh/id_%r',
      '  ProxyJump bastion, hop2',
      'Host *.corp !bastion.corp',
      '  Port 2200',
      '  IdentitiesOnly yes',
      '  IdentityAgent none',
      'Host aliased',
      '  HostName 10.0.0.9',
      '  HostKeyAlias aliased-key',
      '  UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh2',
      '  ConnectTimeout 7',
      'Host legacy',
      '  ProxyCommand ssh -W %h:%p bastion',
      'Host inblock',
      '  Include conf.d/nested.inc',
      '  User from-block',
      '',
    ].join('\n'),
  );
  await writeFile(join(home, '.ssh', 'conf.d', '10-first.conf'), 'Host included\n  HostName 192.0.2.7\n  Port 2022\n');
  await writeFile(join(home, '.ssh', 'conf.d', 'nested.inc'), '  Port 2023\n');
  await writeFile(join(home, 'system_config'), 'Host *\n  User system-user\n  Port 2999\n  ForwardAgent yes\n');
  options = { home, systemConfigFile: join(home, 'system_config'), localUser: 'me' };
});

afterAll(() => rm(home, { recursive: true, force: true }));

describe('resolveSshHost', () => {
  it('applies a Host pattern: HostName with %h, User, IdentityFiles with ~ and tokens, a ProxyJump chain', async () => {
    const host = await resolveSshHost('gpu1', options);
    expect(host).toMatchObject({
      alias: 'gpu1',
      hostName: 'gpu1.lab.example',
      user: 'alice',
      port: 2999, // from the system config: the user config says nothing about gpu*'s port
      identityFiles: [join(home, '.ssh', 'id_gpu'), join(home, '.ssh', 'id_alice')],
      proxyJump: ['bastion', 'hop2'],
      forwardAgent: true,
    });
  });

  it('lets the target override User and Port, and falls back to the local user, port 22 and the default keys', async () => {
    expect(await resolveSshHost('bob@gpu1:2222', options)).toMatchObject({ user: 'bob', port: 2222, identityFiles: [join(home, '.ssh', 'id_gpu'), join(home, '.ssh', 'id_bob')] });
    const bare = await resolveSshHost('plain.example', { ...options, systemConfigFile: null });
    expect(bare).toMatchObject({
      hostName: 'plain.example',
      user: 'me',
      port: 22,
      proxyJump: [],
      identitiesOnly: false,
      forwardAgent: false,
      identityFiles: ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(home, '.ssh', f)),
      knownHostsFiles: [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2'), '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    });
    expect(bare.identityAgent).toBeUndefined();
  });

  it('honours negated patterns, IdentitiesOnly and IdentityAgent none', async () => {
    expect(await resolveSshHost('db.corp', options)).toMatchObject({ port: 2200, identitiesOnly: true, identityAgent: null });
    expect(await resolveSshHost('bastion.corp', options)).toMatchObject({ port: 2999, identitiesOnly: false });
  });

  it('reads HostKeyAlias, UserKnownHostsFile lists, ConnectTimeout and ProxyCommand', async () => {
    const host = await resolveSshHost('aliased', options);
    expect(host).toMatchObject({ hostName: '10.0.0.9', hostKeyAlias: 'aliased-key', connectTimeoutMs: 7000 });
    expect(host.knownHostsFiles.slice(0, 2)).toEqual([join(home, '.ssh', 'kh1'), join(home, '.ssh', 'kh2')]);
    expect((await resolveSshHost('legacy', options)).proxyCommand).toBe('ssh -W %h:%p bastion');
  });

  it('follows Include, at the top and inside a Host block', async () => {
    expect(await resolveSshHost('included', options)).toMatchObject({ hostName: '192.0.2.7', port: 2022 });
    expect(await resolveSshHost('inblock', options)).toMatchObject({ port: 2023, user: 'from-block' });
  });

  it('works without any config file', async () => {
    expect(await resolveSshHost('x@y:3', { home, configFile: join(home, 'missing'), systemConfigFile: null })).toMatchObject({ user: 'x', hostName: 'y', port: 3 });
  });
});
