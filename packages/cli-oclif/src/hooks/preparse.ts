import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Hook } from '@oclif/core';

/**
 * `tether plugins install ./my-plugin` installs from a local directory: oclif's installer takes
 * `file:` URLs for that, so an argument that names an existing path becomes one.
 */
const hook: Hook<'preparse'> = async function ({ argv, options }) {
  const id = (options.context as { id?: string } | undefined)?.id;
  if (id !== 'plugins:install' && id !== 'plugins:add') return argv;
  return argv.map(asFileUrl);
};

/** A plugin argument naming an existing path, as the `file:` URL oclif's installer takes; other arguments as they are. */
export function asFileUrl(arg: string): string {
  return !arg.startsWith('-') && !arg.includes(':') && (arg.startsWith('.') || arg.startsWith('/') || arg.startsWith('~')) && existsSync(expand(arg)) ? `file:${resolve(expand(arg))}` : arg;
}

function expand(path: string): string {
  return path === '~' || path.startsWith('~/') ? `${process.env['HOME'] ?? ''}${path.slice(1)}` : path;
}

export default hook;
