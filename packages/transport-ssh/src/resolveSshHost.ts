import { readFile, readdir } from 'node:fs/promises';
import { homedir, hostname, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';
import { TetherError } from '@tether/core';
import { formatSshTarget, parseSshTarget, type SshTarget } from './sshTarget.js';

/** Where the SSH client configuration comes from. Every path defaults to OpenSSH's. */
export interface SshConfigOptions {
  /** The home directory: `~` in paths, `~/.ssh/config`, `~/.ssh/known_hosts`, `~/.ssh/id_*`. Default `os.homedir()`. */
  readonly home?: string;
  /** The user's SSH config. Default `<home>/.ssh/config`; `null` reads none. A missing file is fine. */
  readonly configFile?: string | null;
  /** The system-wide SSH config, applied after the user's. Default `/etc/ssh/ssh_config`; `null` reads none. */
  readonly systemConfigFile?: string | null;
  /** The local login name, the default remote user. Default `os.userInfo().username`. */
  readonly localUser?: string;
}

/** A host after `~/.ssh/config` has been applied: everything needed to open the connection. */
export interface ResolvedSshHost {
  /** The host as the target named it (an alias or a host name). */
  readonly alias: string;
  /** Where to connect (`HostName`, `%h` expanded; the alias when not set). */
  readonly hostName: string;
  readonly port: number;
  readonly user: string;
  /** Private keys to offer, in order, `~` and `%` tokens expanded. OpenSSH's defaults when the config names none. */
  readonly identityFiles: readonly string[];
  /** `IdentitiesOnly yes`: offer only agent keys whose public half matches an identity file. */
  readonly identitiesOnly: boolean;
  /** The agent socket from `IdentityAgent` (`null` for `none`); undefined when the config says nothing. */
  readonly identityAgent?: string | null;
  /** Jump hosts to go through, in order (`ProxyJump`); empty for a direct connection. */
  readonly proxyJump: readonly string[];
  /** `ProxyCommand`, which this transport does not run (refused with a clear error). */
  readonly proxyCommand?: string;
  /** `UserKnownHostsFile`s, then `GlobalKnownHostsFile`s, expanded. */
  readonly knownHostsFiles: readonly string[];
  /** `HostKeyAlias`: the name to look the host key up under instead of the host name. */
  readonly hostKeyAlias?: string;
  /** `ConnectTimeout` in ms. */
  readonly connectTimeoutMs?: number;
  /** `ForwardAgent yes`. */
  readonly forwardAgent: boolean;
}

const DEFAULT_IDENTITY_FILES = ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'];
const MAX_INCLUDE_DEPTH = 16;

/**
 * Applies the SSH client configuration to a target (`user@host:port` or a `Host` alias) the way
 * OpenSSH does: the user's file first, then the system's, first value wins; `Host` patterns
 * (`*`, `?`, `!`), `Include`, `HostName` with `%h`, and an explicit user or port in the target
 * over the config's. `Match exec` blocks are not evaluated (no shell runs while resolving).
 */
export async function resolveSshHost(target: string | SshTarget, options: SshConfigOptions = {}): Promise<ResolvedSshHost> {
  const parsed = typeof target === 'string' ? parseSshTarget(target) : target;
  const home = options.home ?? homedir();
  const localUser = options.localUser ?? userInfo().username;
  const userFile = options.configFile === undefined ? join(home, '.ssh', 'config') : options.configFile;
  const systemFile = options.systemConfigFile === undefined ? '/etc/ssh/ssh_config' : options.systemConfigFile;

  let text = '';
  if (userFile !== null) text += await readConfigText(expandTilde(userFile, home), join(home, '.ssh'), home, 0);
  // Whatever block the user's file ended in must not swallow the system file's first lines.
  if (systemFile !== null) text += `\nHost *\n${await readConfigText(systemFile, dirname(systemFile), home, 0)}`;

  let config: SSHConfig;
  try {
    config = SSHConfig.parse(text);
  } catch (error) {
    throw new TetherError('INVALID_ARGUMENT', `cannot parse the ssh config (${describe(error)})`, {}, { cause: error });
  }
  const computed = config.compute({ Host: parsed.host, ...(parsed.user === undefined ? {} : { User: parsed.user }) }, { ignoreCase: true, matchExec: false });
  const one = (key: string): string | undefined => {
    const value = computed[key];
    const first = Array.isArray(value) ? value[0] : value;
    return first === undefined || first === '' ? undefined : first;
  };
  const many = (key: string): string[] => {
    const value = computed[key];
    return value === undefined ? [] : Array.isArray(value) ? value : [value];
  };

  const user = parsed.user ?? one('user') ?? localUser;
  const portText = one('port');
  const port = parsed.port ?? (portText === undefined ? 22 : Number(portText));
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TetherError('INVALID_ARGUMENT', `the ssh config gives ${parsed.host} an invalid Port "${portText}"`, { host: parsed.host });
  }
  const hostName = expandTokens(one('hostname') ?? parsed.host, { h: parsed.host, '%': '%' });
  const tokens: Record<string, string> = {
    '%': '%',
    h: hostName,
    n: parsed.host,
    p: String(port),
    r: user,
    u: localUser,
    d: home,
    l: hostname().split('.')[0] ?? '',
    L: hostname().split('.')[0] ?? '',
  };
  const path = (value: string) => expandTilde(expandTokens(value, tokens), home);

  const configuredIdentities = many('identityfile').filter((file) => file.toLowerCase() !== 'none');
  const identityFiles = (configuredIdentities.length > 0 ? configuredIdentities : DEFAULT_IDENTITY_FILES).map(path);

  const agentValue = one('identityagent');
  let identityAgent: string | null | undefined;
  if (agentValue !== undefined) {
    if (/^none$/i.test(agentValue)) identityAgent = null;
    else if (agentValue === 'SSH_AUTH_SOCK' || agentValue === '$SSH_AUTH_SOCK') identityAgent = process.env['SSH_AUTH_SOCK'] ?? null;
    else identityAgent = path(agentValue);
  }
  const jump = one('proxyjump');
  const proxyCommand = one('proxycommand');
  const userKnown = many('userknownhostsfile').flatMap((v) => v.split(/\s+/)).filter(Boolean);
  const globalKnown = many('globalknownhostsfile').flatMap((v) => v.split(/\s+/)).filter(Boolean);
  const connectTimeout = one('connecttimeout');

  return {
    alias: parsed.host,
    hostName,
    port,
    user,
    identityFiles,
    identitiesOnly: yes(one('identitiesonly')),
    ...(identityAgent === undefined ? {} : { identityAgent }),
    proxyJump: jump === undefined || jump.toLowerCase() === 'none' ? [] : jump.split(',').map((hop) => hop.trim()).filter(Boolean),
    ...(proxyCommand === undefined || proxyCommand.toLowerCase() === 'none' ? {} : { proxyCommand }),
    knownHostsFiles: [
      ...(userKnown.length > 0 ? userKnown.filter((f) => f.toLowerCase() !== 'none') : ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']).map(path),
      ...(globalKnown.length > 0 ? globalKnown.filter((f) => f.toLowerCase() !== 'none') : ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']).map(path),
    ],
    ...(one('hostkeyalias') === undefined ? {} : { hostKeyAlias: one('hostkeyalias')! }),
    ...(connectTimeout !== undefined && /^\d+$/.test(connectTimeout) ? { connectTimeoutMs: Number(connectTimeout) * 1000 } : {}),
    forwardAgent: yes(one('forwardagent')),
  };
}

/** `user@host:port` of a resolved host, for messages. */
export function describeHost(host: ResolvedSshHost): string {
  return formatSshTarget({ user: host.user, host: host.hostName, port: host.port });
}

/** `~` and `~/…` against `home`. */
export function expandTilde(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}

function expandTokens(value: string, tokens: Record<string, string>): string {
  return value.replace(/%(.)/g, (whole, letter: string) => tokens[letter] ?? whole);
}

function yes(value: string | undefined): boolean {
  return value !== undefined && /^(yes|true)$/i.test(value);
}

/** The file's text with `Include` lines replaced by the files they name (globs in the last path part). */
async function readConfigText(file: string, relativeTo: string, home: string, depth: number): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return '';
    throw new TetherError('PERMISSION_DENIED', `cannot read the ssh config ${file} (${code ?? describe(error)})`, { path: file }, { cause: error });
  }
  if (depth >= MAX_INCLUDE_DEPTH) {
    throw new TetherError('INVALID_ARGUMENT', `the ssh config includes files more than ${MAX_INCLUDE_DEPTH} levels deep (a loop?) at ${file}`);
  }
  const out: string[] = [];
  let block: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const include = /^\s*include\s*[=\s]\s*(.+?)\s*$/i.exec(line);
    if (/^\s*(host|match)\s*[=\s]/i.test(line)) block = line;
    if (!include) {
      out.push(line);
      continue;
    }
    for (const pattern of include[1]!.split(/\s+/)) {
      const expanded = expandTilde(pattern, home);
      const absolute = isAbsolute(expanded) ? expanded : join(relativeTo, expanded);
      for (const match of await globFiles(absolute)) out.push(await readConfigText(match, relativeTo, home, depth + 1));
    }
    // Lines after an Include inside a block still belong to that block.
    if (block !== undefined) out.push(block);
  }
  return `${out.join('\n')}\n`;
}

async function globFiles(pattern: string): Promise<string[]> {
  const name = basename(pattern);
  if (!/[*?]/.test(name)) return [pattern];
  const dir = dirname(pattern);
  const regex = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  const entries = await readdir(dir).catch(() => [] as string[]);
  return entries.filter((entry) => regex.test(entry)).sort().map((entry) => join(dir, entry));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
