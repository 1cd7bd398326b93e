import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Plugin, PluginEntry } from '@tether/core';

/**
 * A kernel plugin (transport, backend) declared by an installed package in its package.json:
 *
 * ```json
 * "tether": { "kernelPlugins": [{ "module": "./dist/plugin.js", "transports": ["docker"] }] }
 * ```
 *
 * (An `"oclif"` section is needed only for oclif commands: `tether plugins install` takes a
 * package with kernel plugins alone.)
 *
 * A bare string is `{ "module": <string> }`. The module's default export is the plugin
 * (`definePlugin({...})`); it may also export `machineSchemas`, a map from each transport it
 * provides to a Standard Schema (zod, valibot…) of that transport's machine fields, or, when it
 * declares a single transport, that schema alone as `machineSchema`.
 */
export interface KernelPluginDeclaration {
  /** A path relative to the declaring package's root (`./dist/plugin.js`), or a package name the CLI can import. */
  readonly module: string;
  /** Transports the plugin provides; the CLI loads it only for machines that use one of them. */
  readonly transports?: readonly string[];
  /** Load it into the local daemon's kernel (backends). Default: true unless `transports` is given. */
  readonly daemon?: boolean;
  /** Skip it quietly when the module is not installed. Default false. */
  readonly optional?: boolean;
}

/** A declaration with where it came from. */
export interface DeclaredKernelPlugin extends KernelPluginDeclaration {
  /** The package that declared it. */
  readonly declaredBy: string;
  /** What to `import()`. */
  readonly specifier: string;
}

/** What the CLI knows of an oclif plugin (the root CLI package is one too). */
export interface PackageInfo {
  readonly name: string;
  readonly root: string;
  readonly pjson: object;
}

/** Every kernel plugin declared by the given packages, in their order. Malformed declarations are skipped. */
export function declaredKernelPlugins(packages: Iterable<PackageInfo>): DeclaredKernelPlugin[] {
  const declared: DeclaredKernelPlugin[] = [];
  for (const pkg of packages) {
    const section = (pkg.pjson as { tether?: { kernelPlugins?: unknown } }).tether;
    if (!section || !Array.isArray(section.kernelPlugins)) continue;
    for (const item of section.kernelPlugins as unknown[]) {
      const declaration: KernelPluginDeclaration | undefined =
        typeof item === 'string' ? { module: item } : isDeclaration(item) ? item : undefined;
      if (!declaration) continue;
      const relative = declaration.module.startsWith('./') || declaration.module.startsWith('../');
      const specifier = relative ? pathToFileURL(join(pkg.root, declaration.module)).href : isAbsolute(declaration.module) ? pathToFileURL(declaration.module).href : declaration.module;
      declared.push({ ...declaration, declaredBy: pkg.name, specifier });
    }
  }
  return declared;
}

function isDeclaration(value: unknown): value is KernelPluginDeclaration {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['module'] === 'string' &&
    (v['transports'] === undefined || (Array.isArray(v['transports']) && v['transports'].every((t) => typeof t === 'string')))
  );
}

/** Loaded by the daemon: declarations that are not transport-only. */
export function isDaemonPlugin(declared: KernelPluginDeclaration): boolean {
  return declared.daemon ?? !(declared.transports && declared.transports.length > 0);
}

/** A Standard Schema (https://standardschema.dev): zod ≥ 3.24, valibot, arktype… */
export interface StandardSchema {
  readonly '~standard': {
    validate(value: unknown): StandardResult | Promise<StandardResult>;
  };
}
export type StandardResult =
  | { readonly value: unknown; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> }> };

/** A loaded plugin module. */
export interface LoadedKernelPlugin {
  readonly declared: DeclaredKernelPlugin;
  readonly plugin: Plugin;
  readonly machineSchemas: Readonly<Record<string, StandardSchema>>;
}

/** Why a declared plugin could not be imported. */
export interface KernelPluginImportFailure {
  readonly declared: DeclaredKernelPlugin;
  readonly reason: string;
}

/**
 * Imports declared plugins. One that cannot be imported, or whose default export is not a
 * plugin, is returned as a failure (an optional one that is not installed is left out).
 */
/**
 * First-party transports imported by name here, so the bundle carries them (sharing its copy of
 * core) instead of each pulling in a second, unbundled one.
 */
const FIRST_PARTY: Readonly<Record<string, () => Promise<unknown>>> = {
  '@tether/transport-ws': () => import('@tether/transport-ws'),
  '@tether/transport-ssh': () => import('@tether/transport-ssh'),
  '@tether/transport-cloud': () => import('@tether/transport-cloud'),
};

let beforeThirdPartyImport: (() => void) | undefined;

/**
 * Called once before the first plugin outside this runtime is imported. The runtime loader sets
 * it when it loaded the bundle, to point the plugins' `@tether/core` at the bundle's copy.
 */
export function beforeImportingPlugins(hook: () => void): void {
  beforeThirdPartyImport = hook;
}

export async function importKernelPlugins(
  declared: readonly DeclaredKernelPlugin[],
): Promise<{ loaded: LoadedKernelPlugin[]; failed: KernelPluginImportFailure[] }> {
  if (declared.some((d) => FIRST_PARTY[d.specifier] === undefined)) beforeThirdPartyImport?.();
  const results = await Promise.all(
    declared.map(async (d) => {
      try {
        const load = FIRST_PARTY[d.specifier] ?? (() => import(d.specifier));
        const module = (await load()) as { default?: unknown; machineSchemas?: unknown; machineSchema?: unknown };
        const plugin = module.default as Plugin | undefined;
        if (typeof plugin !== 'object' || plugin === null || typeof plugin.register !== 'function') {
          return { failed: { declared: d, reason: `${d.module} has no plugin as its default export (export default definePlugin({...}))` } };
        }
        const schemas: Record<string, StandardSchema> =
          typeof module.machineSchemas === 'object' && module.machineSchemas !== null ? { ...(module.machineSchemas as Record<string, StandardSchema>) } : {};
        // A plugin of one declared transport may export its schema alone, as `machineSchema`.
        if (d.transports?.length === 1 && isStandardSchema(module.machineSchema)) schemas[d.transports[0]!] ??= module.machineSchema;
        return { loaded: { declared: d, plugin, machineSchemas: schemas } };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (d.optional && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')) return {};
        return { failed: { declared: d, reason: `${d.module} could not be imported: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` } };
      }
    }),
  );
  return {
    loaded: results.flatMap((r) => ('loaded' in r && r.loaded ? [r.loaded] : [])),
    failed: results.flatMap((r) => ('failed' in r && r.failed ? [r.failed] : [])),
  };
}

function isStandardSchema(value: unknown): value is StandardSchema {
  return typeof value === 'object' && value !== null && typeof (value as { '~standard'?: { validate?: unknown } })['~standard']?.validate === 'function';
}

/** Plugin entries for a kernel, with configs by plugin name (config file `plugins:` section). */
export function pluginEntries(loaded: readonly LoadedKernelPlugin[], configs: Readonly<Record<string, unknown>>): PluginEntry[] {
  return loaded.map(({ plugin }) => (configs[plugin.name] === undefined ? plugin : { plugin, config: configs[plugin.name] }));
}

/** A plugin config the plugin's schema refused: where (`plugins.<name>.<field>`) and why. */
export interface PluginConfigFault {
  readonly plugin: string;
  /** `plugins.@tether/plugin-filesystem.roots: expected a list`. */
  readonly message: string;
}

/**
 * Validates each plugin's config (the config file's `plugins:` section) with the plugin's own
 * schema before a kernel loads it: the kernel would skip a plugin whose config it refuses, and a
 * daemon without its filesystem backend, say, fails every file command until restarted.
 * Returns the first fault, naming the field (with the closest known key for an unknown one).
 */
export async function pluginConfigFault(loaded: readonly LoadedKernelPlugin[], configs: Readonly<Record<string, unknown>>): Promise<PluginConfigFault | undefined> {
  const { formatIssues, formatPath } = await import('./config/formatIssues.js');
  const { declaredKeys, refusedKeys, suggestion } = await import('./config/unknownFields.js');
  for (const { plugin } of loaded) {
    if (!plugin.configSchema) continue;
    const parsed = plugin.configSchema.safeParse(configs[plugin.name] ?? {});
    if (parsed.success) continue;
    const prefix = ['plugins', plugin.name];
    const unknown = refusedKeys(parsed.error.issues)[0];
    if (unknown !== undefined) {
      return { plugin: plugin.name, message: `${formatPath([...prefix, unknown])}: unknown field${suggestion(unknown, declaredKeys(plugin.configSchema) ?? [])}` };
    }
    return { plugin: plugin.name, message: formatIssues(parsed.error.issues, prefix) };
  }
  return undefined;
}
