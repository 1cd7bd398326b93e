import { mkdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commands } from '@oclif/plugin-plugins';
import { CliError, describeError } from '../../cliError.js';
import { asFileUrl } from '../../hooks/preparse.js';

const OclifInstall: (typeof commands)['plugins:install'] = commands['plugins:install'];

/**
 * oclif's `plugins install`, with two changes:
 * - a package that only declares kernel plugins (`"tether": { "kernelPlugins": [...] }`, no
 *   `"oclif"` key and no commands) is installed, where oclif would refuse it as "not a valid
 *   CLI plugin";
 * - plugins get this CLI's `@tether/core` for their peer dependency on it (see `#provideHostCore`);
 * - an install that fails leaves the plugins' package.json (and its lock file) as they were
 *   (oclif's own clean-up misses a dependency installed from a path), and reports the error as
 *   every tether command does: `{"error":{…}}` on stderr, exit code by its code (a package that
 *   is no plugin: `PLUGIN_LOAD_FAILED`, 11).
 */
export default class PluginsInstall extends OclifInstall {
  static override description = `${OclifInstall.description ?? ''}

A package whose package.json declares only kernel plugins ("tether": {"kernelPlugins": [...]}: transports, backends) needs no "oclif" section. A failed install leaves the plugins' package.json as it was.`;

  override async run(): Promise<void> {
    const flags = this.argv.filter((a) => a.startsWith('-'));
    const specs = this.argv.filter((a) => !a.startsWith('-'));
    if (specs.length === 0) return super.run();
    const argv = this.argv;
    try {
      for (const spec of specs) {
        this.argv = [...flags, spec];
        await this.#installOne(spec);
      }
    } finally {
      this.argv = argv;
    }
  }

  async #installOne(spec: string): Promise<void> {
    const files = [join(this.config.dataDir, 'package.json'), join(this.config.dataDir, 'package-lock.json')];
    const saved = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => undefined)));
    try {
      await this.#provideHostCore();
      await super.run();
    } catch (error) {
      if (await this.#adoptKernelOnly(spec, error)) return;
      await Promise.all(files.map((f, i) => (saved[i] === undefined ? rm(f, { force: true }) : writeFile(f, saved[i]!))));
      if (/plugin is invalid/.test(String((error as Error)?.message))) {
        throw new CliError('PLUGIN_LOAD_FAILED', `${spec} is not a tether plugin: its package.json has neither "tether": {"kernelPlugins": [...]} nor an "oclif" section`, {
          hint: 'declare the kernel plugins (transports, backends) in "tether": {"kernelPlugins": [...]}, or oclif commands in "oclif": {"commands": ...}; see the CLI README, Plugins',
          cause: error,
        });
      }
      throw error;
    }
  }

  /**
   * Plugins take `@tether/core` as a peer dependency: the plugins' package.json depends on this
   * CLI's own copy (`file:` its directory, which npm links), so npm finds the peer satisfied
   * instead of fetching another copy, and a plugin's `import '@tether/core'` resolves, through
   * the link, to the very files the CLI and its daemon load: one copy of core at run time.
   */
  async #provideHostCore(): Promise<void> {
    const core = fileURLToPath(new URL('..', import.meta.resolve('@tether/core')));
    const file = join(this.config.dataDir, 'package.json');
    const pjson = (await readJson(file)) ?? { private: true, oclif: { schema: 1, plugins: [] } };
    // optionalDependencies, not dependencies: oclif's installer looks for the package it just
    // installed from a path among `dependencies`, and would take this `file:` entry for it.
    const optional = (pjson['optionalDependencies'] as Record<string, string> | undefined) ?? {};
    const wanted = `file:${core.replace(/\/$/, '')}`;
    if (optional['@tether/core'] !== wanted) {
      await mkdir(this.config.dataDir, { recursive: true });
      await writeFile(file, `${JSON.stringify({ ...pjson, optionalDependencies: { ...optional, '@tether/core': wanted } }, null, 2)}\n`);
    }
    // The link itself, before npm runs: npm's tree builder fails on a peer met by a link it has yet to make.
    const link = join(this.config.dataDir, 'node_modules', '@tether', 'core');
    if ((await realpath(link).catch(() => undefined)) !== (await realpath(core))) {
      await rm(link, { recursive: true, force: true });
      await mkdir(dirname(link), { recursive: true });
      await symlink(core, link, 'dir');
    }
  }

  /**
   * oclif installed the package, then refused it for lacking an `"oclif"` key: if it declares
   * kernel plugins, record it as a user plugin the way oclif does (a dependency and an
   * `oclif.plugins` entry in the plugins' package.json). Returns whether it did.
   */
  async #adoptKernelOnly(spec: string, error: unknown): Promise<boolean> {
    if (!/plugin is invalid/.test(String((error as Error)?.message))) return false;
    const given = asFileUrl(spec);
    const url = given.startsWith('file:') ? given : undefined;
    const name = url ? await this.#installedFrom(url) : spec.replace(/(?<!^)@.*$/, '');
    if (name === undefined) return false;
    const installed = await readJson(join(this.config.dataDir, 'node_modules', name, 'package.json'));
    const kernelPlugins = (installed?.['tether'] as { kernelPlugins?: unknown } | undefined)?.kernelPlugins;
    if (!installed || installed['oclif'] !== undefined || !Array.isArray(kernelPlugins) || kernelPlugins.length === 0) return false;
    const file = join(this.config.dataDir, 'package.json');
    const pjson = (await readJson(file)) ?? { private: true };
    const oclif = (pjson['oclif'] as { plugins?: unknown[] } | undefined) ?? {};
    const plugins = (oclif.plugins ?? []).filter((p) => !(typeof p === 'object' && p !== null && (p as { name?: unknown }).name === name));
    plugins.push(url ? { name, type: 'user', url } : { name, tag: 'latest', type: 'user' });
    const dependencies = { ...(pjson['dependencies'] as Record<string, string> | undefined), [name]: url ?? `^${String(installed['version'])}` };
    await writeFile(file, `${JSON.stringify({ ...pjson, oclif: { schema: 1, ...oclif, plugins }, dependencies }, null, 2)}\n`);
    process.stderr.write(`installed ${name} ${String(installed['version'])} (kernel plugins only)\n`);
    return true;
  }

  /** The package installed from `url` (a directory or a tarball): its name, from the directory or from npm's record of it. */
  async #installedFrom(url: string): Promise<string | undefined> {
    const path = url.slice('file:'.length);
    if (!/\.(tgz|tar\.gz|tar)$/.test(path)) return packageName(path);
    const dependencies = ((await readJson(join(this.config.dataDir, 'package.json')))?.['dependencies'] ?? {}) as Record<string, string>;
    return Object.entries(dependencies).find(([, from]) => from.startsWith('file:') && basename(from) === basename(path))?.[0];
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    const { json, exitCode } = describeError(error, { command: this.id ?? 'plugins:install' });
    process.stderr.write(`${JSON.stringify(json)}\n`);
    process.exitCode = exitCode;
  }
}

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

async function packageName(dir: string): Promise<string | undefined> {
  const name = (await readJson(join(dir, 'package.json')))?.['name'];
  return typeof name === 'string' ? name : undefined;
}
