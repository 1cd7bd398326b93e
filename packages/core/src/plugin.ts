import type { DependencyContainer, InjectionToken } from 'tsyringe';
import type { z } from 'zod';
import { TetherError, isTetherError } from './errors.js';

/** The plugin API this kernel speaks. A plugin declares the version it was written for. */
export const PLUGIN_API_VERSION = 1;

/** How a plugin provides an implementation for a token. */
export type Provider<T> = { readonly useValue: T } | { readonly useFactory: (container: DependencyContainer) => T };

/** What `register` receives. Contributions take effect only if `register` succeeds. */
export interface PluginContext<Config = unknown> {
  /** The plugin's config, validated by its `configSchema` (undefined without one). */
  readonly config: Config;
  /** Provide an implementation of a port (`ProcessBackend`, `Transport`…). Tokens may be provided several times. */
  provide<T>(token: InjectionToken<T>, provider: Provider<T>): void;
  /** Resolve something the kernel or an earlier plugin provides (e.g. `EventStore`). */
  resolve<T>(token: InjectionToken<T>): T;
  /** Run `fn` when the kernel is closed (release handles, stop timers). */
  onDispose(fn: () => void | Promise<void>): void;
}

export interface PluginDefinition<Schema extends z.ZodType = z.ZodType> {
  /** Unique among loaded plugins; npm-style (`@tether/plugin-process`, `tether-plugin-docker`). */
  readonly name: string;
  readonly apiVersion: number;
  readonly configSchema?: Schema;
  register(ctx: PluginContext<z.output<Schema>>): void | Promise<void>;
}

/** A plugin, as a package exports it: `export default definePlugin({...})`. */
export type Plugin = PluginDefinition & { readonly __tetherPlugin: true };

export function definePlugin<Schema extends z.ZodType = z.ZodType>(definition: PluginDefinition<Schema>): Plugin {
  return Object.freeze({ ...definition, __tetherPlugin: true as const }) as unknown as Plugin;
}

/** A plugin with the config to give it. */
export type PluginEntry = Plugin | { readonly plugin: Plugin; readonly config?: unknown };

export interface PluginFailure {
  readonly name: string;
  readonly error: TetherError;
}

export interface PluginReport {
  readonly loaded: readonly string[];
  readonly failed: readonly PluginFailure[];
}

/**
 * Loads plugins in order into `container`. A plugin that is a duplicate, speaks another API
 * version, has an invalid config or throws from `register` is reported and skipped; none of its
 * contributions are applied, and the others load.
 */
export async function loadPlugins(
  entries: readonly PluginEntry[],
  container: DependencyContainer,
  disposers: Array<() => void | Promise<void>>,
): Promise<PluginReport> {
  const loaded: string[] = [];
  const failed: PluginFailure[] = [];
  for (const entry of entries) {
    const plugin = 'plugin' in entry ? entry.plugin : entry;
    const rawConfig = 'plugin' in entry ? entry.config : undefined;
    const name = typeof plugin?.name === 'string' ? plugin.name : '<unnamed>';
    try {
      if (typeof plugin?.register !== 'function' || typeof plugin.name !== 'string' || plugin.name === '') {
        throw new TetherError('PLUGIN_LOAD_FAILED', 'not a plugin: export definePlugin({ name, apiVersion, register })');
      }
      if (loaded.includes(name)) {
        throw new TetherError('PLUGIN_DUPLICATE', `a plugin named "${name}" is already loaded`, { plugin: name });
      }
      if (plugin.apiVersion !== PLUGIN_API_VERSION) {
        throw new TetherError(
          'PLUGIN_API_MISMATCH',
          `plugin "${name}" targets plugin API ${String(plugin.apiVersion)}; this kernel speaks ${PLUGIN_API_VERSION}`,
          { plugin: name, apiVersion: plugin.apiVersion },
        );
      }
      let config: unknown = rawConfig;
      if (plugin.configSchema) {
        const parsed = plugin.configSchema.safeParse(rawConfig ?? {});
        if (!parsed.success) {
          const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
          throw new TetherError('PLUGIN_LOAD_FAILED', `plugin "${name}" config is invalid: ${where}`, { plugin: name });
        }
        config = parsed.data;
      }
      const contributions: Array<() => void> = [];
      const pluginDisposers: Array<() => void | Promise<void>> = [];
      try {
        await plugin.register({
          config,
          provide(token, provider) {
            contributions.push(() => {
              if ('useValue' in provider) container.register(token, { useValue: provider.useValue });
              else container.register(token, { useFactory: provider.useFactory });
            });
          },
          resolve: (token) => container.resolve(token),
          onDispose: (fn) => void pluginDisposers.push(fn),
        });
      } catch (error) {
        // Release what the plugin set up before it failed.
        for (const dispose of pluginDisposers.reverse()) await Promise.resolve().then(dispose).catch(() => undefined);
        throw error;
      }
      for (const apply of contributions) apply();
      disposers.push(...pluginDisposers);
      loaded.push(name);
    } catch (cause) {
      const error = isTetherError(cause)
        ? cause
        : new TetherError('PLUGIN_LOAD_FAILED', `plugin "${name}" failed to load: ${describe(cause)}`, { plugin: name }, { cause });
      failed.push({ name, error });
    }
  }
  return { loaded, failed };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
