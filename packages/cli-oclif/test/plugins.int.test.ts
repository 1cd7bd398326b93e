// `tether plugins install <path>` of a third-party plugin (test/fixtures/tether-plugin-loop):
// its oclif command appears, and its kernel plugin provides the `loop` transport, loaded only
// for machines that use it, with its own schema for their fields.
import { execFile } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import processPlugin from '@tether/plugin-process';
import { cliEnv, type CliEnv } from './support.js';

const fixture = fileURLToPath(new URL('./fixtures/tether-plugin-loop', import.meta.url));
const kernelOnly = fileURLToPath(new URL('./fixtures/tether-plugin-kernel-only', import.meta.url));
const broken = fileURLToPath(new URL('./fixtures/tether-plugin-broken', import.meta.url));
const peer = fileURLToPath(new URL('./fixtures/tether-plugin-peer', import.meta.url));
/** The @tether/core the CLI and its daemon load (the file, through any link). */
const hostCore = pathToFileURL(realpathSync(fileURLToPath(new URL('../../core/dist/index.js', import.meta.url)))).href;
/** The runtime bundle's core entry (dist/core.bundle.js), which the CLI's client side runs on. */
const bundleCore = pathToFileURL(fileURLToPath(new URL('../dist/core.bundle.js', import.meta.url))).href;
let cli: CliEnv;
let daemon: Daemon;

beforeAll(async () => {
  cli = cliEnv('tether-cli-plugins-');
  mkdirSync(join(cli.root, 'd'));
  daemon = await startDaemon({ listen: '127.0.0.1:0', dataDir: join(cli.root, 'd'), plugins: [processPlugin] });
});
afterAll(async () => {
  await daemon?.close();
  await cli?.cleanup();
});

describe('plugins', () => {
  it('a machine on a transport nobody provides yet: TRANSPORT_UNAVAILABLE (exit 4)', async () => {
    cli.writeConfig(`machines:\n  - { name: looped, transport: loop, target: "${daemon.url}", secret_file: "${daemon.tokenFile}" }\n`);
    const result = await cli.run(['exec', 'run', '--machine', 'looped', '--cmd', 'true']);
    expect([result.code, result.stdout, result.error().code]).toEqual([4, '', 'TRANSPORT_UNAVAILABLE']);
    expect(result.error().hint).toMatch(/tether plugins install/);
  });

  it('installs from a local path; its command and its transport work', async () => {
    const install = await cli.run(['plugins', 'install', fixture], { timeoutMs: 120_000 });
    expect(install.code).toBe(0);
    expect((await cli.run(['plugins'])).stdout).toMatch(/tether-plugin-loop 1\.0\.0/);
    expect((await cli.run(['loop-hello'])).json()).toEqual({ hello: 'loop' });

    cli.writeConfig(`machines:\n  - { name: looped, transport: loop, target: "${daemon.url}", secret_file: "${daemon.tokenFile}" }\n`);
    const run = await cli.run(['exec', 'run', '--machine', 'looped', '--cmd', 'echo through the loop']);
    expect(run.code).toBe(0);
    expect(run.lines().find((l) => l['type'] === 'log')).toMatchObject({ stream: 'stdout', line: 'through the loop' });
    expect((await cli.run(['machine', 'check', '--machine', 'looped'])).json()).toMatchObject({ name: 'looped', transport: 'loop', daemon_ok: true, ssh_ok: null });
  });

  it('installs a plugin with kernel plugins only (no "oclif" section); its transport works', async () => {
    const install = await cli.run(['plugins', 'install', kernelOnly], { timeoutMs: 120_000 });
    expect(install.code).toBe(0);
    expect((await cli.run(['plugins'])).stdout).toMatch(/tether-plugin-kernel-only 1\.0\.0/);
    cli.writeConfig(`machines:\n  - { name: k, transport: kloop, url: "${daemon.url}", token_file: "${daemon.tokenFile}" }\n`);
    const run = await cli.run(['exec', 'run', '--machine', 'k', '--cmd', 'echo kernel only']);
    expect(run.code).toBe(0);
    expect(run.lines().find((l) => l['type'] === 'log')).toMatchObject({ line: 'kernel only' });
  });

  it('a failed install leaves the plugins\' package.json as it was, and reports a JSON error', async () => {
    const pjson = join(cli.root, 'data', 'tether', 'package.json');
    const before = readFileSync(pjson, 'utf8');
    const install = await cli.run(['plugins', 'install', broken], { timeoutMs: 120_000 });
    // (stdout may carry npm's own notices: the installer passes them on.)
    expect(install.code).toBe(11);
    expect(install.error()).toMatchObject({ code: 'PLUGIN_LOAD_FAILED', message: expect.stringMatching(/is not a tether plugin/) });
    expect(readFileSync(pjson, 'utf8')).toBe(before);
    expect((await cli.run(['plugins'])).stdout).not.toMatch(/tether-plugin-broken/);
  });

  it('installs a packed plugin whose @tether/core is a peer: the daemon and the bundled CLI runtime each give it their own core, one copy', async () => {
    const { stdout } = await promisify(execFile)('npm', ['pack', '--pack-destination', cli.root, '--json'], { cwd: peer });
    const tarball = join(cli.root, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
    const install = await cli.run(['plugins', 'install', tarball], { timeoutMs: 120_000 });
    expect(install.code).toBe(0);
    const dataDir = join(cli.root, 'data', 'tether');
    // No second copy: the plugins' @tether/core is a link to the CLI's.
    expect(lstatSync(join(dataDir, 'node_modules', '@tether', 'core')).isSymbolicLink()).toBe(true);
    const probe = join(cli.root, 'peer-probe');
    await cli.run(['daemon', 'stop']);
    const run = await cli.run(['exec', 'run', '--cmd', 'true'], { env: { TETHER_PEER_PROBE: probe } });
    expect(run.code).toBe(0);
    expect(readFileSync(probe, 'utf8')).toBe(hostCore);
    await cli.run(['daemon', 'stop']);

    // The client side: the CLI's runtime bundle carries core; the plugin's transport gets that
    // very copy (the bundle's core entry, whose modules the runtime shares), not the package's.
    cli.writeConfig('machines:\n  - { name: inproc-box, transport: inproc }\n');
    const clientProbe = join(cli.root, 'peer-probe-client');
    const check = await cli.run(['machine', 'check', '--machine', 'inproc-box'], { env: { TETHER_PEER_PROBE_CLIENT: clientProbe } });
    expect(check.json()).toMatchObject({ name: 'inproc-box', transport: 'inproc', daemon_ok: true });
    expect(readFileSync(clientProbe, 'utf8')).toBe(bundleCore);
    const runtime = (await import(pathToFileURL(fileURLToPath(new URL('../dist/runtime.bundle.js', import.meta.url))).href)) as Record<string, unknown>;
    const bundled = (await import(bundleCore)) as Record<string, unknown>;
    expect(runtime['createKernel']).toBe(bundled['createKernel']);
    expect(runtime['RemoteMachine']).toBe(bundled['RemoteMachine']);
    // Without the sharing (TETHER_NO_SHARED_CORE), the plugin resolves the package's own modules: a second copy.
    await cli.run(['machine', 'check', '--machine', 'inproc-box'], { env: { TETHER_PEER_PROBE_CLIENT: clientProbe, TETHER_NO_SHARED_CORE: '1' } });
    expect(readFileSync(clientProbe, 'utf8')).toBe(hostCore);
  });

  it("validates the machine's fields with the plugin's schema", async () => {
    cli.writeConfig(`machines:\n  - { name: looped, transport: loop, target: "${daemon.url}" }\n`);
    const result = await cli.run(['exec', 'run', '--machine', 'looped', '--cmd', 'true']);
    expect([result.code, result.stdout, result.error().code]).toEqual([3, '', 'CONFIG_INVALID']);
    expect(result.error().message).toMatch(/machines\[0\]\.secret_file: expected a string/);
  });
});
