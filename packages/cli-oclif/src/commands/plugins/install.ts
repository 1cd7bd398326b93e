import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { commands } from '@oclif/plugin-plugins';
import { CliError, describeError } from '../../cliError.js';
import { asFileUrl } from '../../hooks/preparse.js';

const OclifInstall: (typeof commands)['plugins:install'] = commands['plugins:install'];

/**
 * oclif's `plugins install`, with two changes:
 * - a package that only declares kernel plugins (`"tether": { "kernelPlugins": [...] }`, no
 *   `"oclif"` key and no commands) is installed, where oclif would refuse it as "not a valid
 *   CLI plugin";
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
   * oclif installed the package, then refused it for lacking an `"oclif"` key: if it declares
   * kernel plugins, record it as a user plugin the way oclif does (a dependency and an
   * `oclif.plugins` entry in the plugins' package.json). Returns whether it did.
   */
  async #adoptKernelOnly(spec: string, error: unknown): Promise<boolean> {
    if (!/plugin is invalid/.test(String((error as Error)?.message))) return false;
    const given = asFileUrl(spec);
    const url = given.startsWith('file:') ? given : undefined;
    const name = url ? await packageName(url.slice('file:'.length)) : spec.replace(/(?<!^)@.*$/, '');
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
