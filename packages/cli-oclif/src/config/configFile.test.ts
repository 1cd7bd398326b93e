import { describe, expect, it } from 'vitest';
import { parseConfig } from './configFile.js';

const parse = (yaml: string) => parseConfig(yaml, '/cfg.yaml');
const failure = (yaml: string) => {
  try {
    parse(yaml);
  } catch (error) {
    return error as { code: string; message: string; hint: string };
  }
  throw new Error('expected the config to be refused');
};

describe('the config file', () => {
  it('an empty file is no machines', () => {
    expect(parse('')).toMatchObject({ exists: true, machines: [], plugins: {} });
    expect(parse('machines:\n')).toMatchObject({ machines: [] });
  });

  it('accepts the fields existing configs have and infers the transport', () => {
    const config = parse(`machines:
  - name: gpu1
    ssh: alice@gpu1.example
    daemon_port: 7337
    daemon_cmd: tether daemon serve
    use_direct_addr: false
  - name: box
    addr: ws://10.0.0.5:7337
    token: 0123456789abcdef0123
  - name: other
    transport: docker
    container: dev
`);
    expect(config.machines.map((m) => [m.config.name, m.config.transport, m.where])).toEqual([
      ['gpu1', 'ssh', 'machines[0]'],
      ['box', 'ws', 'machines[1]'],
      ['other', 'docker', 'machines[2]'],
    ]);
    // Fields a transport plugin reads are kept for it.
    expect(config.machines[2]!.config['container']).toBe('dev');
  });

  it('accepts machines as a map keyed by name', () => {
    const config = parse('machines:\n  gpu1: { ssh: gpu1 }\n  box:\n    addr: ws://h:1\n    token_file: ~/t\n');
    expect(config.machines.map((m) => [m.config.name, m.config.transport, m.where])).toEqual([
      ['gpu1', 'ssh', 'machines.gpu1'],
      ['box', 'ws', 'machines.box'],
    ]);
  });

  it('keeps plugin configs for the daemon', () => {
    expect(parse("plugins:\n  '@tether/plugin-filesystem': { roots: [/] }\n").plugins).toEqual({ '@tether/plugin-filesystem': { roots: ['/'] } });
  });

  it('keeps the daemon section (a relay to register with), with relay and environment together', () => {
    expect(parse('daemon:\n  relay: wss://relay.example:8443\n  environment: gpu1\n').daemon).toEqual({ relay: 'wss://relay.example:8443', environment: 'gpu1' });
    expect(parse('machines:\n').daemon).toEqual({});
    expect(failure('daemon:\n  relay: wss://relay.example:8443\n').message).toBe('/cfg.yaml: daemon.environment: set relay and environment together');
    expect(failure('daemon:\n  relay: http://x\n  environment: gpu1\n').message).toMatch(/^\/cfg\.yaml: daemon\.relay: the relay URL/);
    expect(failure('daemon:\n  relya: wss://x\n').code).toBe('CONFIG_INVALID');
  });

  it('takes a default process backend for a machine and for the daemon (default_backend)', () => {
    expect(parse('daemon:\n  default_backend: slurm\n').daemon).toEqual({ default_backend: 'slurm' });
    expect(parse('machines:\n  - { name: hpc, ssh: login1, default_backend: slurm }\n').machines[0]!.config).toMatchObject({ default_backend: 'slurm' });
    expect(failure('daemon:\n  default_backend: Slurm!\n').message).toMatch(/daemon\.default_backend: a backend name/);
  });

  it('names the bad field', () => {
    expect(failure('machines:\n  - { name: a, ssh: a }\n  - { name: b, ssh: b }\n  - { name: c, ssh: c, daemon_port: "x" }\n')).toMatchObject({
      code: 'CONFIG_INVALID',
      message: '/cfg.yaml: machines[2].daemon_port: expected a number',
    });
    expect(failure('machines:\n  gpu1: { ssh: 5 }\n').message).toBe('/cfg.yaml: machines.gpu1.ssh: expected a string');
    expect(failure('machines:\n  - { ssh: nameless }\n').message).toBe('/cfg.yaml: machines[0].name: expected a string');
    expect(failure('machines: 3\n').message).toMatch(/^\/cfg\.yaml: machines: /);
  });

  it('refuses a duplicate name, the reserved name local, and a machine with no way to reach it', () => {
    expect(failure('machines:\n  - { name: a, ssh: a }\n  - { name: a, ssh: b }\n').message).toMatch(/machines\[1\]\.name: machine "a" is configured twice/);
    expect(failure('machines:\n  - { name: local, ssh: a }\n').message).toMatch(/"local" is reserved/);
    expect(failure('machines:\n  - { name: a }\n').message).toMatch(/machines\[0\]: machine "a" has no transport/);
  });

  it('refuses an unknown top-level field, suggesting the one meant', () => {
    expect(failure('machine:\n  - { name: a, ssh: a }\n')).toMatchObject({
      code: 'CONFIG_INVALID',
      message: '/cfg.yaml: machine: unknown field (did you mean machines?)',
      hint: expect.stringContaining('has machines, plugins, projects, daemon only'),
    });
    expect(failure('colour: blue\n').message).toBe('/cfg.yaml: colour: unknown field');
  });

  it('a YAML alias bomb is a config error, not a crash', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const bomb = `plugins:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
    expect(failure(bomb)).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/^\/cfg\.yaml: invalid YAML: .*alias/i), hint: expect.stringContaining('aliases') });
    // A few aliases are fine.
    expect(parse('machines:\n  - &m { name: a, ssh: a }\nplugins:\n  p: { copy: *m }\n').machines).toHaveLength(1);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(failure('machines:\n  - name: a\n    ssh: [x\n')).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/^\/cfg\.yaml: invalid YAML at line \d+, column \d+: /) });
  });
});
