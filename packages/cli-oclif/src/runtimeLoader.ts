import { readFileSync, statSync } from 'node:fs';
import { redirectCore } from './coreRedirect.js';

type Runtime = typeof import('./runtime.js');

let loading: Promise<Runtime> | undefined;

/**
 * The client runtime (see runtime.ts): the one-file bundle written at build time when it is
 * current, else the plain modules. Set TETHER_NO_BUNDLE=1 to always use the plain modules.
 *
 * With the bundle, third-party kernel plugins get the bundle's core for their `@tether/core`
 * (one copy in the process; see coreRedirect.ts). TETHER_NO_SHARED_CORE=1 leaves them their
 * own resolution (the package's modules: a second copy), to compare.
 */
export function loadRuntime(): Promise<Runtime> {
  loading ??= bundleIsCurrent() ? importBundle().catch(() => import('./runtime.js')) : import('./runtime.js');
  return loading;
}

async function importBundle(): Promise<Runtime> {
  const runtime = (await import(new URL('./runtime.bundle.js', import.meta.url).href)) as Runtime;
  const core = new URL('./core.bundle.js', import.meta.url).href;
  if (!process.env['TETHER_NO_SHARED_CORE']) runtime.beforeImportingPlugins(() => redirectCore(core));
  return runtime;
}

/**
 * The bundle records the build stamps of the packages inside it; if one of them has been
 * rebuilt since (development), the bundle is stale. In an installed copy the stamps' files do
 * not exist, and the bundle is used.
 */
function bundleIsCurrent(): boolean {
  if (process.env['TETHER_NO_BUNDLE']) return false;
  try {
    const { stamps } = JSON.parse(readFileSync(new URL('./runtime.bundle.json', import.meta.url), 'utf8')) as { stamps: Record<string, number | null> };
    const packageRoot = new URL('../', import.meta.url);
    for (const [file, recorded] of Object.entries(stamps)) {
      const now = statSync(new URL(file, packageRoot), { throwIfNoEntry: false })?.mtimeMs;
      if (now !== undefined && now !== recorded) return false;
    }
    return true;
  } catch {
    return false;
  }
}
