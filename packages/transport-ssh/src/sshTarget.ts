import { TetherError } from '@tether/core';

/** An SSH destination as written by a user, before `~/.ssh/config` is applied. */
export interface SshTarget {
  /** The login name, when the target names one (`alice@gpu1`). */
  readonly user?: string;
  /** A host name, an IP address, or a `Host` alias of `~/.ssh/config`. */
  readonly host: string;
  /** The port, when the target names one (`gpu1:2222`). */
  readonly port?: number;
}

/**
 * Parses an SSH destination: `host`, `user@host`, `host:port`, `user@host:port`,
 * `[v6addr]:port`, `user@[v6addr]` or `ssh://user@host:port`. A bare IPv6 address without
 * brackets is taken whole, with no port.
 */
export function parseSshTarget(text: string): SshTarget {
  if (typeof text !== 'string' || text.trim() === '') throw invalid(String(text), 'it is empty');
  let rest = text.trim();
  if (/^ssh:\/\//i.test(rest)) rest = rest.slice('ssh://'.length).replace(/\/$/, '');
  if (/\s/.test(rest)) throw invalid(text, 'it contains whitespace');

  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === '') throw invalid(text, 'the user before @ is empty');
  }

  let host = rest;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(rest);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    [host, portText] = rest.split(':') as [string, string];
  }
  if (host === '' || host.startsWith('-')) throw invalid(text, 'the host is empty or starts with "-"');
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw invalid(text, `"${portText}" is not a port`);
  }
  return { ...(user === undefined ? {} : { user }), host, ...(port === undefined ? {} : { port }) };
}

/** `user@host:port` for messages (brackets around an IPv6 address). */
export function formatSshTarget(target: { readonly user?: string; readonly host: string; readonly port?: number }): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.user === undefined ? '' : `${target.user}@`}${host}${target.port === undefined ? '' : `:${target.port}`}`;
}

function invalid(text: string, why: string): TetherError {
  return new TetherError('INVALID_ARGUMENT', `invalid ssh target "${text}": ${why} (expected host, user@host, user@host:port or a Host alias)`, {
    target: text,
  });
}
