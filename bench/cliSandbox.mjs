// A throwaway home for benchmarks that run the built `tether` CLI as a new process per call:
// its own HOME and XDG dirs under a temp root (nothing touches the user's config or daemon),
// and `tether(args)` timing one call.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const cliRoot = dirname(dirname(fileURLToPath(import.meta.resolve('@tether/cli'))));
const bin = join(cliRoot, 'bin', 'run.js');

/** A sandbox under a new temp dir named after `prefix`; `remove()` deletes it. */
export function cliSandbox(prefix) {
  const root = mkdtempSync(join(tmpdir(), `${prefix}-`));
  mkdirSync(join(root, 'home'));
  mkdirSync(join(root, 'config', 'tether'), { recursive: true });
  const env = {
    ...process.env,
    HOME: join(root, 'home'),
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_STATE_HOME: join(root, 'state'),
    XDG_DATA_HOME: join(root, 'data'),
    XDG_CACHE_HOME: join(root, 'cache'),
    NODE_ENV: 'production',
  };
  delete env.TETHER_NO_BUNDLE;
  delete env.TETHER_NO_SHARED_CORE;
  /** Runs `tether ARGS`; throws on a non-zero exit. */
  const tether = (args, extraEnv = {}) => {
    const t0 = process.hrtime.bigint();
    const out = spawnSync(process.execPath, [bin, ...args], { env: { ...env, ...extraEnv }, cwd: env.HOME, encoding: 'utf8' });
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
    if (out.status !== 0) throw new Error(`tether ${args.join(' ')} exited ${out.status}: ${out.stderr}`);
    return { elapsed, stdout: out.stdout };
  };
  return { root, env, tether, remove: () => rmSync(root, { recursive: true, force: true }) };
}
