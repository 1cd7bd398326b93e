/**
 * How the CLI reports failures: `{"error":{"code","message","hint"}}` on stderr and an exit code
 * chosen by the code. Codes are core's `ErrorCodes` plus the CLI's own: `USAGE` (a flag or
 * argument is wrong), `CONFIG_INVALID` (the config file cannot be used) and `COMMAND_FAILED` (a
 * plugin's command, e.g. `plugins inspect`, reported a failure; exit 1).
 *
 * This module must stay light: every command imports it, so it does not import `@tether/core`
 * (a TetherError is recognised by its brand instead).
 */

/** Exit codes by error code; anything not listed exits 1. Documented in the README. */
export const EXIT_CODES: Readonly<Record<string, number>> = {
  USAGE: 2,
  INVALID_ARGUMENT: 2,
  CONFIG_INVALID: 3,
  UNKNOWN_MACHINE: 4,
  TRANSPORT_UNAVAILABLE: 4,
  EXEC_NOT_FOUND: 5,
  CONNECTION_LOST: 6,
  OUTCOME_UNKNOWN: 6,
  UNAUTHORIZED: 7,
  PERMISSION_DENIED: 7,
  TIMEOUT: 8,
  GATE_TIMEOUT: 8,
  PATH_NOT_FOUND: 9,
  PATH_EXISTS: 9,
  PATH_OUTSIDE_ROOT: 9,
  NOT_A_FILE: 9,
  NOT_A_DIRECTORY: 9,
  DIRECTORY_NOT_EMPTY: 9,
  TOO_LARGE: 9,
  EXEC_FINISHED: 10,
  STDIN_CLOSED: 10,
  NOT_A_TTY: 10,
  BACKEND_UNAVAILABLE: 11,
  STORE_LOCKED: 11,
  STORE_CORRUPT: 11,
  STORE_CLOSED: 11,
  PLUGIN_DUPLICATE: 11,
  PLUGIN_API_MISMATCH: 11,
  PLUGIN_LOAD_FAILED: 11,
  DISK_FULL: 12,
  STORE_WRITE_FAILED: 12,
  SPAWN_FAILED: 127,
  CWD_NOT_FOUND: 127,
  ABORTED: 130,
};

/**
 * The phrases agents triage on (codex-remote's, see the README's *codex-remote parity*); a
 * message of that code always contains its phrase. `connection reset by peer`, `connection
 * refused` and `timeout` are the ones codex-remote retries on.
 */
const PHRASES: Readonly<Record<string, RegExp>> = {
  UNKNOWN_MACHINE: /unknown machine/,
  UNAUTHORIZED: /unauthorized/,
  EXEC_NOT_FOUND: /exec_id not found/,
  CONNECTION_LOST: /connection (refused|reset by peer)/,
  TIMEOUT: /timeout/,
  GATE_TIMEOUT: /timeout/,
};
const PREFIXES: Readonly<Record<string, string>> = {
  UNKNOWN_MACHINE: 'unknown machine: ',
  UNAUTHORIZED: 'unauthorized: ',
  EXEC_NOT_FOUND: 'exec_id not found: ',
  CONNECTION_LOST: 'connection reset by peer: ',
  TIMEOUT: 'timeout: ',
  GATE_TIMEOUT: 'timeout: ',
};

const brand = Symbol.for('tether.CliError');

/**
 * A failure the CLI itself detects (bad flag, bad config…), with its hint. Recognised by a brand
 * (`isCliError`), not `instanceof`: the client runtime bundle carries its own copy of this class.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly [brand] = true;
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }
}

/** What the CLI knew when the error happened, to write a useful hint. */
export interface ErrorContext {
  readonly command?: string;
  readonly machine?: string;
  /** The machine's transport, when known. */
  readonly transport?: string;
  readonly knownMachines?: readonly string[];
  readonly configFile?: string;
  readonly daemonLog?: string;
}

export interface ErrorJson {
  readonly error: { readonly code: string; readonly message: string; readonly hint: string };
}

/** The JSON error and exit code for anything thrown by a command. */
export function describeError(error: unknown, context: ErrorContext = {}): { json: ErrorJson; exitCode: number } {
  const { code, message, hint, details } = normalize(error);
  const phrase = PHRASES[code];
  const fullMessage = phrase && !phrase.test(message) ? `${PREFIXES[code]}${message}` : message;
  return {
    json: { error: { code, message: fullMessage, hint: hint ?? defaultHint(code, context, details) } },
    exitCode: EXIT_CODES[code] ?? 1,
  };
}

export function isCliError(value: unknown): value is CliError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

function normalize(error: unknown): { code: string; message: string; hint?: string; details: Readonly<Record<string, unknown>> } {
  if (isCliError(error)) return { code: error.code, message: error.message, hint: error.hint, details: error.details };
  if (isTetherErrorLike(error)) return { code: error.code, message: error.message, details: error.details ?? {} };
  const oclif = oclifError(error);
  if (oclif) return oclif;
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'INTERNAL', message: message || 'internal error', details: {} };
}

function isTetherErrorLike(error: unknown): error is { code: string; message: string; details?: Record<string, unknown> } {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as Record<symbol, unknown>)[Symbol.for('tether.TetherError')] === true &&
    typeof (error as { code?: unknown }).code === 'string'
  );
}

/** oclif's parse errors (missing or unknown flags, bad option values) are usage errors. */
function oclifError(error: unknown): { code: string; message: string; hint?: string; details: Record<string, unknown> } | undefined {
  if (!(error instanceof Error)) return undefined;
  const parseErrors = ['CLIParseError', 'RequiredArgsError', 'RequiredFlagError', 'UnexpectedArgsError', 'NonExistentFlagsError', 'FlagInvalidOptionError', 'ArgInvalidOptionError', 'FailedFlagValidationError'];
  const oclif = (error as { oclif?: { exit?: number } }).oclif;
  if (parseErrors.includes(error.constructor.name) || parseErrors.includes(error.name)) {
    return { code: 'USAGE', message: firstLine(error.message), details: {} };
  }
  // A command of a plugin (oclif's plugins, help, autocomplete) that failed on purpose (`this.error()`).
  if (oclif !== undefined) return { code: oclif.exit === 2 ? 'USAGE' : 'COMMAND_FAILED', message: firstLine(error.message), details: {} };
  return undefined;
}

function firstLine(text: string): string {
  // oclif's messages end with "See more help with --help"; keep the substance, in one line.
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^See more help with/.test(l))
    .join(' ')
    .replace(/^The following errors? occurred:\s*/, '');
}

function defaultHint(code: string, context: ErrorContext, details: Readonly<Record<string, unknown>>): string {
  const machine = context.machine ?? 'local';
  const help = context.command ? `tether ${context.command.replaceAll(':', ' ')} --help` : 'tether --help';
  const viaLocal = machine === 'local';
  switch (code) {
    case 'USAGE':
    case 'INVALID_ARGUMENT':
      // The daemon refused a value over one of its size limits (labels, the command line).
      if (typeof details['limit'] === 'number' && typeof details['field'] === 'string') {
        return `keep ${details['field']} within ${details['limit']} bytes (${Math.round(details['limit'] / 1024)} KiB)${details['field'] === 'command' ? ': put a long script in a file and run it with --script' : ''}`;
      }
      return `check the flags: ${help}`;
    case 'CONFIG_INVALID':
      return `fix the config file${context.configFile ? ` ${context.configFile}` : ''} (or pass another with --config)`;
    case 'UNKNOWN_MACHINE':
      return `known machines: ${(context.knownMachines ?? ['local']).join(', ')}; add machines to ${context.configFile ?? 'the config file'} or pass --config`;
    case 'TRANSPORT_UNAVAILABLE':
      return `install the plugin that provides transport "${String(details['transport'] ?? '?')}" (tether plugins install <name>) or fix the machine's transport field`;
    case 'EXEC_NOT_FOUND':
      return `list the executions on this machine: tether exec list --machine ${machine}`;
    case 'CONNECTION_LOST':
    case 'OUTCOME_UNKNOWN':
      if (details['peer'] !== undefined && !viaLocal) return peerHint(String(details['peer']), machine, context);
      return viaLocal
        ? `the local daemon is not answering: see tether daemon status${context.daemonLog ? ` and ${context.daemonLog}` : ''}`
        : `check that the machine is reachable and its daemon runs: tether machine check --machine ${machine}`;
    case 'UNAUTHORIZED':
      // The ssh transport says exactly how to trust (or re-check) a host key.
      if (typeof details['reason'] === 'string' && details['reason'].startsWith('host-key-') && typeof details['command'] === 'string') {
        return details['reason'] === 'host-key-unknown'
          ? `if ${String(details['fingerprint'] ?? 'the fingerprint in the message')} is the host's key, trust it with: ${details['command']}`
          : `if the host key was changed on purpose, remove the old one with: ${details['command']} (then trust the new one)`;
      }
      // The cloud transport says how to pin a daemon's fingerprint; a refusal by the relay is about the client's relay credential.
      if (typeof details['reason'] === 'string' && details['reason'].startsWith('fingerprint-') && typeof details['command'] === 'string') {
        return `if ${String(details['fingerprint'])} is the daemon's (tether daemon fingerprint on its host), trust it with: ${details['command']}`;
      }
      if (details['relayOk'] === false) return `check relay_token or relay_token_file of machine ${machine} (a client credential from the relay's operator: tether relay enroll --client NAME)`;
      if (viaLocal) return 'the local daemon refused the token: restart it with tether daemon stop (it starts again on the next command)';
      if (context.transport === 'ssh') return `check that "ssh" reaches ${machine} without a password (ssh-agent or an identity file, host key in known_hosts), and its token_file`;
      return `check the token or token_file of machine ${machine} in the config file`;
    case 'PERMISSION_DENIED':
      return 'check file modes and ownership of the path (and of token files: they must be mode 0600)';
    case 'TIMEOUT':
    case 'GATE_TIMEOUT':
      return 'raise --timeout or try again later';
    case 'PATH_NOT_FOUND':
    case 'NOT_A_FILE':
    case 'NOT_A_DIRECTORY':
      return `check the path: tether file ls --machine ${machine} --path <dir>`;
    case 'PATH_EXISTS':
      return 'the target exists: remove it first or choose another path';
    case 'PATH_OUTSIDE_ROOT':
      if (typeof details['leftOut'] === 'string') {
        return `${String(details['leftOut'])} is not one of the daemon's roots: ${String(details['reason'])}. Use a directory under the home directory, or make it a root on purpose: plugins: { '@tether/plugin-filesystem': { roots: ['~', '${String(details['leftOut'])}'] } } in the config of the daemon's machine`;
      }
      return "the daemon only serves files inside its roots: the user's home, its data dir, and /tmp where the kernel protects shared temp dirs (set plugins: { '@tether/plugin-filesystem': { roots: [...] } } in the config of the daemon's machine for others)";
    case 'DIRECTORY_NOT_EMPTY':
      return 'pass --recursive to remove a directory with its contents';
    case 'TOO_LARGE':
      return 'a size limit was exceeded: split the data or raise the limit in the daemon config';
    case 'EXEC_FINISHED':
      return `the execution has finished: see tether exec result --machine ${machine} --id <id>`;
    case 'STDIN_CLOSED':
      return 'start the execution with --stdin to write to it, and write before --eof';
    case 'NOT_A_TTY':
      return 'start the execution with --tty';
    case 'BACKEND_UNAVAILABLE':
      return 'the daemon lacks a backend for this (process, filesystem or gpu plugin): check its log';
    case 'STORE_LOCKED':
      return 'another daemon uses this data dir: stop it with tether daemon stop, or pass another --data-dir';
    case 'DISK_FULL':
      if (details['dir'] === undefined && details['path'] !== undefined) return `free space on the disk that holds ${String(details['path'])} on ${machine}, then write again`;
      return `free space under ${String(details['dir'] ?? "the daemon's data dir")} (the disk holding the daemon's event store); running commands keep running with their output held, and the daemon resumes writing by itself once there is room`;
    case 'STORE_WRITE_FAILED':
      return `the daemon cannot write its event store under ${String(details['dir'] ?? 'its data dir')}: check that filesystem (read-only? I/O errors in dmesg?); the daemon retries by itself`;
    case 'ABORTED':
      return 'interrupted';
    case 'COMMAND_FAILED':
      return `see ${help}`;
    default:
      return `this looks like a bug; run again with DEBUG=tether* for details${context.daemonLog ? ` or read ${context.daemonLog}` : ''}`;
  }
}

/** The hint for a daemon port served by something other than a tether daemon (`details.peer` of the transport's error). */
function peerHint(peer: string, machine: string, context: ErrorContext): string {
  const config = context.configFile ?? 'the config file';
  const after = `then start tether's daemon there: tether machine up --machine ${machine}`;
  switch (peer) {
    case 'codexd':
      return `this port is served by codexd, not tether: stop codexd on ${machine} (or give machine ${machine} another daemon_port in ${config}), ${after}`;
    case 'http':
    case 'not-http':
      return `the daemon port of ${machine} is served by another program, not a tether daemon: free the port (or set another daemon_port for ${machine} in ${config}), ${after}`;
    default:
      return `the peer on the daemon port of ${machine} reset the connection: a tether daemon that was stopping, or another program on that port; check with: tether machine check --machine ${machine}`;
  }
}
