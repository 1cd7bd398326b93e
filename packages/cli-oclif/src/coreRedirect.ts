import module from 'node:module';

/**
 * Makes every later `import '@tether/core'` in this process resolve to `coreUrl` (the runtime
 * bundle's core entry, `dist/core.bundle.js`), so a third-party plugin that takes core as a peer
 * shares the bundle's copy instead of loading the package's own modules a second time.
 *
 * Node ≥ 22.15 has in-thread resolve hooks (`module.registerHooks`); Node 20 gets the same hook
 * through `module.register` (`coreResolveHook.ts`, run by Node's loader thread). Registered once,
 * only when a plugin outside the bundle is about to be imported.
 */
export function redirectCore(coreUrl: string): void {
  if (redirected) return;
  redirected = true;
  const hooks = module as unknown as { registerHooks?: (hooks: { resolve: SyncResolve }) => unknown };
  if (typeof hooks.registerHooks === 'function') {
    hooks.registerHooks({ resolve: (specifier, context, next) => (specifier === CORE ? { url: coreUrl, format: 'module', shortCircuit: true } : next(specifier, context)) });
  } else {
    module.register(new URL('./coreResolveHook.js', import.meta.url), { data: { coreUrl } });
  }
}

const CORE = '@tether/core';
let redirected = false;

type SyncResolve = (specifier: string, context: object, next: (specifier: string, context: object) => object) => object;
