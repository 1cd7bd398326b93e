// Bad input never prints on stdout: a JSON error with a hint on stderr and a meaningful exit code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, type CliEnv, type CliResult } from './support.js';

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv('tether-cli-errors-');
});
afterAll(async () => {
  await cli.cleanup();
});

function expectFailure(result: CliResult, exit: number, code: string, message: RegExp): void {
  expect(result.stdout).toBe('');
  expect(result.code).toBe(exit);
  const error = result.error();
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
  expect(error.hint.length).toBeGreaterThan(10);
  // Nothing but the one JSON error on stderr.
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
}

describe('bad input', () => {
  it('an unknown machine names the known ones (exit 4)', async () => {
    const result = await cli.run(['exec', 'result', '--machine', 'gpu9', '--id', 'x']);
    expectFailure(result, 4, 'UNKNOWN_MACHINE', /^unknown machine: gpu9$/);
    expect(result.error().hint).toMatch(/known machines: local/);
  });

  it('an unknown exec id (exit 5)', async () => {
    expectFailure(await cli.run(['exec', 'result', '--id', 'x0nothing']), 5, 'EXEC_NOT_FOUND', /exec_id not found: x0nothing/);
  });

  it('a bad duration, time or regular expression (exit 2)', async () => {
    expectFailure(await cli.run(['exec', 'run', '--cmd', 'true', '--timeout', '10 minutes']), 2, 'INVALID_ARGUMENT', /--timeout: invalid duration "10 minutes"/);
    expectFailure(await cli.run(['exec', 'logs', '--id', 'x', '--since', 'yesterday']), 2, 'INVALID_ARGUMENT', /--since: invalid time/);
    expectFailure(await cli.run(['exec', 'watch', '--id', 'x', '--until-pattern', '(']), 2, 'INVALID_ARGUMENT', /--until-pattern/);
  });

  it('missing or unknown flags, bad option values, unknown commands (exit 2)', async () => {
    expectFailure(await cli.run(['exec', 'result']), 2, 'USAGE', /Missing required flag id/);
    expectFailure(await cli.run(['exec', 'result', '--id', 'x', '--bogus']), 2, 'USAGE', /bogus/);
    expectFailure(await cli.run(['exec', 'logs', '--id', 'x', '--stream', 'sideways']), 2, 'USAGE', /sideways/);
    expectFailure(await cli.run(['exec', 'run']), 2, 'USAGE', /--cmd/);
    expectFailure(await cli.run(['exec', 'frobnicate']), 2, 'USAGE', /unknown command: exec frobnicate/);
  });

  it('a config file that is not YAML (exit 3), with the line', async () => {
    cli.writeConfig('machines:\n  - name: a\n    addr: [unclosed\n');
    const result = await cli.run(['exec', 'result', '--machine', 'a', '--id', 'x']);
    expectFailure(result, 3, 'CONFIG_INVALID', new RegExp(`^${cli.configFile}: invalid YAML at line \\d+`));
  });

  it('a config field of the wrong type names the field (exit 3)', async () => {
    cli.writeConfig('machines:\n  - { name: a, ssh: a.example }\n  - { name: b, addr: "ws://127.0.0.1:1", token: "0123456789abcdef0" }\n  - { name: c, ssh: c.example, daemon_port: "seven" }\n');
    expectFailure(await cli.run(['exec', 'result', '--machine', 'a', '--id', 'x']), 3, 'CONFIG_INVALID', /machines\[2\]\.daemon_port: expected a number$/);
    cli.writeConfig('machines:\n  gpu1:\n    ssh: gpu1.example\n    use_direct_addr: "yes"\n');
    expectFailure(await cli.run(['machine', 'list']), 3, 'CONFIG_INVALID', /machines\.gpu1\.use_direct_addr: expected a boolean/);
  });

  it('a machine without a way to reach it, an unknown transport, a ws machine without a token', async () => {
    cli.writeConfig('machines:\n  - name: lost\n');
    expectFailure(await cli.run(['exec', 'result', '--machine', 'lost', '--id', 'x']), 3, 'CONFIG_INVALID', /machines\[0\]: machine "lost" has no transport/);
    cli.writeConfig('machines:\n  - { name: pigeon, transport: carrier-pigeon }\n');
    expectFailure(await cli.run(['exec', 'result', '--machine', 'pigeon', '--id', 'x']), 4, 'TRANSPORT_UNAVAILABLE', /no transport "carrier-pigeon"/);
    cli.writeConfig('machines:\n  - { name: box, addr: "ws://127.0.0.1:1" }\n');
    expectFailure(await cli.run(['exec', 'result', '--machine', 'box', '--id', 'x']), 3, 'CONFIG_INVALID', /machines\[0\]\.token: set token or token_file/);
  });

  it('an unknown field of a machine or of the top level is named, with the field meant (exit 3)', async () => {
    cli.writeConfig('machines:\n  - { name: gpu1, ssh: gpu1.example, daemon_prot: 7337 }\n');
    for (const argv of [['machine', 'check', '--machine', 'gpu1'], ['machine', 'list'], ['exec', 'run', '--machine', 'gpu1', '--cmd', 'true']]) {
      const result = await cli.run(argv);
      expectFailure(result, 3, 'CONFIG_INVALID', /machines\[0\]\.daemon_prot: unknown field \(did you mean daemon_port\?\)$/);
      expect(result.error().hint).toMatch(/fields of a machine with transport ssh are .*daemon_port/);
    }
    cli.writeConfig('machines:\n  box: { addr: "ws://127.0.0.1:1", token: "0123456789abcdef0", tokne_file: /t }\n');
    expectFailure(await cli.run(['machine', 'check', '--machine', 'box']), 3, 'CONFIG_INVALID', /machines\.box\.tokne_file: unknown field \(did you mean token_file\?\)$/);
    cli.writeConfig('machine:\n  - { name: gpu1, ssh: gpu1.example }\n');
    expectFailure(await cli.run(['machine', 'list']), 3, 'CONFIG_INVALID', /: machine: unknown field \(did you mean machines\?\)$/);
  });

  it('machine check and list: an unknown transport or a ws machine without addr is an error, not a status', async () => {
    cli.writeConfig('machines:\n  - { name: pigeon, transport: carrier-pigeon }\n');
    expectFailure(await cli.run(['machine', 'check', '--machine', 'pigeon']), 4, 'TRANSPORT_UNAVAILABLE', /no transport "carrier-pigeon"/);
    expectFailure(await cli.run(['machine', 'list']), 4, 'TRANSPORT_UNAVAILABLE', /no transport "carrier-pigeon"/);
    cli.writeConfig('machines:\n  - { name: box, transport: ws, token: "0123456789abcdef0" }\n');
    expectFailure(await cli.run(['machine', 'check', '--machine', 'box']), 3, 'CONFIG_INVALID', /machines\[0\]\.addr: /);
    expectFailure(await cli.run(['machine', 'list']), 3, 'CONFIG_INVALID', /machines\[0\]\.addr: /);
  });

  it('durations past 365 days, a zero timeout, --tty with --stdin (exit 2)', async () => {
    cli.writeConfig('');
    const long = await cli.run(['exec', 'run', '--cmd', 'true', '--timeout', '99999999h']);
    expectFailure(long, 2, 'INVALID_ARGUMENT', /--timeout: duration "99999999h" is too long/);
    expect(long.error().hint).toMatch(/365d/);
    expectFailure(await cli.run(['exec', 'start', '--cmd', 'true', '--gpu-gate', '--gpu-gate-timeout', '400d']), 2, 'INVALID_ARGUMENT', /--gpu-gate-timeout: .* too long/);
    expectFailure(await cli.run(['machine', 'list', '--timeout', '0']), 2, 'INVALID_ARGUMENT', /--timeout: the duration must be more than 0/);
    expectFailure(await cli.run(['machine', 'check', '--timeout', '0s']), 2, 'INVALID_ARGUMENT', /--timeout: the duration must be more than 0/);
    expectFailure(await cli.run(['exec', 'run', '--cmd', 'cat', '--tty', '--stdin']), 2, 'USAGE', /--tty and --stdin cannot be used together/);
    expectFailure(await cli.run(['exec', 'start', '--cmd', 'cat', '--tty', '--stdin']), 2, 'USAGE', /--tty and --stdin cannot be used together/);
  });

  it('a --cwd that does not exist: the error alone, nothing on stdout (exit 127)', async () => {
    cli.writeConfig('');
    const missing = `${cli.root}/no/such/dir`;
    for (const command of ['run', 'start']) {
      const result = await cli.run(['exec', command, '--cmd', 'pwd', '--cwd', missing]);
      expectFailure(result, 127, 'CWD_NOT_FOUND', /failed to start: .*no\/such\/dir/);
      expect(result.error().hint).toMatch(/--cwd/);
    }
  });

  it('a broken config file stops the local daemon from starting: its error, not a timeout', async () => {
    const fresh = cliEnv('tether-cli-errors-fresh-');
    try {
      fresh.writeConfig("plugins: [\n");
      const result = await fresh.run(['exec', 'run', '--cmd', 'true']);
      expectFailure(result, 3, 'CONFIG_INVALID', /^the local daemon could not start: .*invalid YAML at line 2/);
    } finally {
      await fresh.cleanup();
    }
  });

  it('a plugin config its schema refuses stops the daemon from starting, naming the field (exit 3)', async () => {
    const fresh = cliEnv('tether-cli-errors-plugin-');
    try {
      fresh.writeConfig("plugins:\n  '@tether/plugin-filesystem': { roots: 5 }\n");
      expectFailure(await fresh.run(['exec', 'run', '--cmd', 'true']), 3, 'CONFIG_INVALID', /^the local daemon could not start: .*plugins\.@tether\/plugin-filesystem\.roots: expected a list/);
      fresh.writeConfig("plugins:\n  '@tether/plugin-filesystem': { root: [/tmp] }\n");
      const typo = await fresh.run(['file', 'ls', '--path', '/tmp']);
      expectFailure(typo, 3, 'CONFIG_INVALID', /plugins\.@tether\/plugin-filesystem\.root: unknown field \(did you mean roots\?\)/);
      // With the config fixed the daemon starts, its filesystem backend there.
      fresh.writeConfig("plugins:\n  '@tether/plugin-filesystem': { roots: [/tmp] }\n");
      const fixed = await fresh.run(['file', 'stat', '--path', '/tmp']);
      expect(fixed.code).toBe(0);
    } finally {
      await fresh.cleanup();
    }
  });

  it('a YAML alias bomb is a config error (exit 3), not an internal one', async () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    cli.writeConfig(`plugins:\n${levels.map((l) => `  ${l}`).join('\n')}\n`);
    expectFailure(await cli.run(['machine', 'list']), 3, 'CONFIG_INVALID', /invalid YAML: .*alias/i);
  });

  it('--config naming a missing file (exit 3)', async () => {
    expectFailure(await cli.run(['machine', 'list', '--config', `${cli.root}/nope.yaml`]), 3, 'CONFIG_INVALID', /no such file/);
  });
});
