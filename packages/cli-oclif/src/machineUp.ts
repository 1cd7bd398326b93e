import type { SshConnection } from '@tether/transport-ssh';
import { CliError, describeError } from './cliError.js';
import { checkMachine, type MachineStatus } from './machineStatus.js';
import type { Machines } from './machines.js';
import { sshMachine, type SshMachine } from './sshMachine.js';

/** Where `machine up` got to: checking, starting the daemon, waiting for it to answer. */
export type UpPhase = 'precheck' | 'start' | 'verify';

/** What `machine up` prints (plus the failure, for the exit code). */
export interface UpResult {
  readonly ok: boolean;
  readonly phase: UpPhase;
  readonly message: string;
  readonly hint?: string;
  /** The machine as found. */
  readonly before: MachineStatus;
  /** The machine at the end (the same as `before` when nothing was started). */
  readonly after: MachineStatus;
  /** Why it failed: its code gives the exit code. */
  readonly failure?: CliError;
}

export interface UpOptions {
  /** Each health check gives up after this long. */
  readonly checkTimeoutMs: number;
  /** Waiting for a started daemon to answer gives up after this long. */
  readonly startTimeoutMs: number;
  readonly onProgress?: (message: string) => void;
}

/** Lines of the daemon's output quoted in a hint. */
const TAIL_LINES = 5;
/** A started command that exits without reporting an error may have forked a daemon: wait this long for the port before failing. */
const EXIT_GRACE_MS = 3_000;
const POLL_MS = 200;
/** A daemon refusing the token this many checks in a row is a token mismatch, not a daemon still starting. */
const MAX_REFUSALS = 3;

/**
 * `tether machine up`: makes sure the daemon of an ssh machine runs and answers.
 *
 * 1. precheck: the machine's status (SSH login alone, then the daemon's health). A healthy daemon
 *    ends it here, successfully; a failed SSH login ends it here, with the transport's hint
 *    (for an unknown host key: the command that trusts it).
 * 2. start: over one SSH connection, checks that the daemon command's program (and `node`, for
 *    `tether`) is on the PATH of non-interactive sessions, then starts the command detached
 *    (`setsid nohup … &`, output appended to `$XDG_STATE_HOME/tether/daemon-up.log`, default
 *    `~/.local/state/tether/`, its pid in `daemon-up.pid` beside it).
 * 3. verify: waits until something accepts connections on `127.0.0.1:<daemon_port>` (through the
 *    same connection; where forwarding is forbidden, by health checks alone), then until the
 *    daemon answers a health check the way every other command reaches it. Fails early when the
 *    started process exits with an error, quoting the end of its output.
 */
export async function machineUp(machines: Machines, name: string, options: UpOptions): Promise<UpResult> {
  const target = await sshMachine(machines, name, 'machine up');
  options.onProgress?.(`checking ${name}`);
  const before = await checkMachine(machines, name, options.checkTimeoutMs);
  if (before.daemon_ok) return { ok: true, phase: 'precheck', message: `the daemon on ${name} is already running${version(before)}`, before, after: before };
  if (before.store) {
    // The daemon runs but cannot write its event store: starting another would not help.
    const failure = new CliError(String(before.store['code']), `the daemon on ${name} runs but ${before.error ?? 'cannot write its event store'}`, { hint: before.hint });
    return { ok: false, phase: 'precheck', message: failure.message, hint: before.hint, before, after: before, failure };
  }
  if (!before.ssh_ok) {
    const { json } = describeError(before.failure, { machine: name, transport: 'ssh' });
    const failure = new CliError(json.error.code, `cannot log in to ${name} over SSH: ${json.error.message}`, { hint: json.error.hint, cause: before.failure });
    return { ok: false, phase: 'precheck', message: failure.message, hint: json.error.hint, before, after: before, failure };
  }

  const fail = (phase: UpPhase, failure: CliError, after: MachineStatus = before): UpResult => ({
    ok: false,
    phase,
    message: failure.message,
    ...(failure.hint === undefined ? {} : { hint: failure.hint }),
    before,
    after,
    failure,
  });

  options.onProgress?.(`starting the daemon on ${name}`);
  let connection: SshConnection;
  try {
    connection = await target.ssh.sshConnect(target.config.ssh, { ...target.connectOptions, forwardAgent: false });
  } catch (error) {
    const { json } = describeError(error, { machine: name, transport: 'ssh' });
    return fail('start', new CliError(json.error.code, json.error.message, { hint: json.error.hint, cause: error }));
  }
  try {
    const command = daemonCommand(target);
    const missing = await missingProgram(connection, target, command);
    if (missing) return fail('start', missing);
    const started = await startDetached(connection, target, command);
    if (started instanceof CliError) return fail('start', started);

    options.onProgress?.(`waiting for the daemon on ${name}`);
    return await verify(machines, connection, target, started, options, before, fail);
  } finally {
    connection.close();
  }
}

/** The command that starts the daemon: `daemon_cmd`, or `tether daemon serve`; a `daemon serve` without `--listen` is given the machine's `daemon_port`. */
export function daemonCommand(target: Pick<SshMachine, 'config' | 'ssh'>): string {
  const base = (target.config.daemon_cmd ?? target.ssh.DEFAULT_DAEMON_CMD).trim();
  const servesWithoutListen = /\bdaemon\s+serve\b/.test(base) && !/(^|\s)--listen(\s|=|$)/.test(base);
  return servesWithoutListen ? `${base} --listen 127.0.0.1:${target.config.daemon_port}` : base;
}

/** Runs a POSIX sh script on the machine, whatever the user's login shell is. */
function runSh(connection: SshConnection, script: string, ssh: SshMachine['ssh'], timeoutMs = 20_000) {
  return connection.run(`sh -c ${ssh.shellQuote(script)}`, { timeoutMs });
}

/**
 * Non-interactive SSH sessions often have a shorter PATH than a login terminal (no nvm, no
 * ~/.local/bin): the daemon command's program, and `node` for `tether`, must be found there.
 */
async function missingProgram(connection: SshConnection, target: SshMachine, command: string): Promise<CliError | undefined> {
  const words = command.split(/\s+/).filter((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
  // `exec`, `env` and env's options (`env -i VAR=value program`) come before the program.
  while (words[0] === 'exec' || words[0] === 'env' || (words[0]?.startsWith('-') && words.length > 1)) words.shift();
  const program = words[0];
  // Anything but a plain word or path (a subshell, quotes, variables) is left to the shell.
  if (program === undefined || !/^[A-Za-z0-9_./~+-]+$/.test(program)) return undefined;
  const programs = [program, ...(program.split('/').pop() === 'tether' ? ['node'] : [])];
  const checks = programs.map((p) => `if command -v ${target.ssh.shellQuote(p, true)} >/dev/null 2>&1; then echo found; else echo missing; fi`);
  const result = await runSh(connection, `${checks.join('\n')}\necho "$PATH"`, target.ssh);
  const lines = result.stdout.toString('utf8').trim().split('\n');
  const path = lines[programs.length] ?? '?';
  const missing = programs.filter((_, i) => lines[i] !== 'found');
  if (missing.length === 0) return undefined;
  const where = `the PATH of non-interactive SSH sessions on ${target.name} (${path})`;
  const fix = `set daemon_cmd of ${target.name} in ${target.configPath} to full paths, e.g. daemon_cmd: /usr/local/bin/node /opt/tether/bin/run.js daemon serve`;
  if (missing[0] === program) {
    const isTether = programs.length > 1;
    const nodeToo = missing.includes('node') ? ' (node is not on it either)' : '';
    return new CliError('SPAWN_FAILED', `cannot start the daemon on ${target.name}: \`${program}\` is not on ${where}${nodeToo}`, {
      hint: isTether
        ? `install tether on ${target.name} (npm install -g @tether/cli) where non-interactive shells find it (a PATH set in ~/.profile or by nvm is not read), or ${fix}`
        : `install ${program} on ${target.name}, or ${fix}`,
    });
  }
  return new CliError('SPAWN_FAILED', `cannot start the daemon on ${target.name}: \`${program}\` is there but node is not on ${where}, so its #!/usr/bin/env node would fail`, {
    hint: `make node available to non-interactive shells on ${target.name}, or ${fix}`,
  });
}

interface Started {
  /** Size of the log before this start: the new output begins there. */
  readonly logOffset: number;
  readonly log: string;
  readonly pidFile: string;
}

/** Starts `command` detached from the SSH session, its output appended to the log. */
async function startDetached(connection: SshConnection, target: SshMachine, command: string): Promise<Started | CliError> {
  const q = target.ssh.shellQuote;
  const script = [
    'd="${XDG_STATE_HOME:-$HOME/.local/state}/tether"',
    'mkdir -p "$d" && chmod 700 "$d" || exit 1',
    'log="$d/daemon-up.log"; pid="$d/daemon-up.pid"; rm -f "$pid"',
    // Kept from one start to the next for the post-mortem, but not without limit.
    'if [ -f "$log" ] && [ "$(wc -c < "$log")" -gt 1048576 ]; then mv -f "$log" "$log.1"; fi',
    ': >> "$log" || exit 1',
    'wc -c < "$log" | tr -d " "',
    'echo "$log"; echo "$pid"',
    // Whatever the command's own environment, the daemon records its token file where this login looks for it.
    'export TETHER_PORT_RECORD_DIR="$d"',
    'cd "$HOME" 2>/dev/null || cd /',
    // setsid: out of the session's process group, so nothing sent to the session reaches the daemon.
    'if command -v setsid >/dev/null 2>&1; then set -- setsid; else set --; fi',
    `"$@" nohup sh -c ${q(`echo $$ > "$1"; ${command}`)} sh "$pid" >> "$log" 2>&1 < /dev/null &`,
  ].join('\n');
  const result = await runSh(connection, script, target.ssh);
  const [offset, log, pidFile] = result.stdout.toString('utf8').trim().split('\n');
  if (result.code !== 0 || offset === undefined || log === undefined || pidFile === undefined || !/^\d+$/.test(offset)) {
    const said = result.stderr.toString('utf8').trim();
    return new CliError('SPAWN_FAILED', `cannot start the daemon on ${target.name}: the start script failed (exit ${result.code}${said ? `: ${said}` : ''})`, {
      hint: `check that the home directory on ${target.name} is writable: ~/.local/state/tether holds the daemon's output`,
    });
  }
  return { logOffset: Number(offset), log, pidFile };
}

async function verify(
  machines: Machines,
  connection: SshConnection,
  target: SshMachine,
  started: Started,
  options: UpOptions,
  before: MachineStatus,
  fail: (phase: UpPhase, failure: CliError, after?: MachineStatus) => UpResult,
): Promise<UpResult> {
  const { name } = target;
  const port = target.config.daemon_port;
  const deadline = Date.now() + options.startTimeoutMs;
  let exitedAt: number | undefined;
  // Through a forwarded channel when the server allows it (cheap); else only by health checks.
  let listening = false;
  let forwarding = true;
  let last: MachineStatus | undefined;
  /** Health checks in a row whose token the daemon refused (one may race the daemon recording its token file). */
  let refusals = 0;
  const succeeded = (after: MachineStatus): UpResult => ({ ok: true, phase: 'verify', message: `started the daemon on ${name}${version(after)}`, before, after });
  for (;;) {
    if (exitedAt === undefined && !(await isRunning(connection, target, started))) {
      exitedAt = Date.now();
      // STORE_LOCKED: another daemon holds the data dir (one starting for a racing call, say); wait for it.
      const reported = await reportedError(connection, target, started);
      if (reported && reported.code !== 'STORE_LOCKED') {
        const after = await checkMachine(machines, name, options.checkTimeoutMs);
        return after.daemon_ok ? succeeded(after) : fail('verify', reported, after);
      }
    }
    if (forwarding && !listening) {
      try {
        const channel = await connection.forwardOut('127.0.0.1', port);
        channel.destroy();
        listening = true;
      } catch (error) {
        const { code, details } = error as { code?: string; details?: Record<string, unknown> };
        if (code === 'PERMISSION_DENIED' && details?.['reason'] === 'forwarding-prohibited') forwarding = false;
        else if (code !== 'CONNECTION_LOST') throw error;
      }
    }
    if (listening || !forwarding) {
      last = await checkMachine(machines, name, Math.max(1_000, Math.min(options.checkTimeoutMs, deadline - Date.now())));
      if (last.daemon_ok) return succeeded(last);
      refusals = errorCode(last.failure) === 'UNAUTHORIZED' ? refusals + 1 : 0;
      if (refusals >= MAX_REFUSALS) return fail('verify', await tokenMismatch(connection, target, last), last);
    }
    const now = Date.now();
    const exitedLongAgo = exitedAt !== undefined && now - exitedAt > EXIT_GRACE_MS && !listening;
    if (now > deadline || exitedLongAgo) {
      const tail = await outputTail(connection, target, started);
      const said = tail.length > 0 ? `; its output: ${tail.join(' | ')}` : '; it printed nothing';
      const after = last ?? (await checkMachine(machines, name, options.checkTimeoutMs));
      if (after.daemon_ok) return succeeded(after);
      const failure =
        errorCode(after.failure) === 'UNAUTHORIZED'
          ? await tokenMismatch(connection, target, after)
          : exitedAt !== undefined
          ? new CliError('CONNECTION_LOST', `connection refused: the daemon started on ${name} exited before it answered`, {
              hint: `read ${started.log} on ${name}${said}`,
            })
          : new CliError('TIMEOUT', `the daemon started on ${name} did not answer on 127.0.0.1:${port} within ${Math.round(options.startTimeoutMs / 1000)}s${after.error ? ` (${after.error})` : ''}`, {
              hint: `raise --timeout, or read ${started.log} on ${name}${said}`,
            });
      return fail('verify', failure, after);
    }
    // A port that accepts but a daemon that does not answer yet: each health check costs a tunnel start.
    await new Promise((resolve) => setTimeout(resolve, listening || !forwarding ? 5 * POLL_MS : POLL_MS));
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The daemon answering on the port refused the token the client read: says which token file was
 * read and which one the daemon on the port recorded (`daemon serve` writes
 * `<state>/daemon-port-<port>` with its pid and token file), so the hint names both.
 */
async function tokenMismatch(connection: SshConnection, target: SshMachine, status: MachineStatus): Promise<CliError> {
  const details = (status.failure as { details?: Record<string, unknown> } | undefined)?.details ?? {};
  const read = typeof details['tokenFile'] === 'string' ? details['tokenFile'] : (target.config.token_file ?? 'the default token file');
  const port = target.config.daemon_port;
  const script = [
    `r="\${XDG_STATE_HOME:-$HOME/.local/state}/tether/daemon-port-${port}"`,
    'echo "$r"',
    'if [ -r "$r" ]; then { read -r pid; read -r tf; } < "$r"; echo "$tf"; if kill -0 "$pid" 2>/dev/null; then echo alive; else echo gone; fi; fi',
  ].join('\n');
  const out = (await runSh(connection, script, target.ssh).catch(() => undefined))?.stdout.toString('utf8').trim().split('\n') ?? [];
  const [record, recorded, state] = out;
  const configured = target.config.token_file !== undefined ? ` (token_file of ${target.name} in ${target.configPath})` : '';
  const compared =
    recorded !== undefined && state === 'alive'
      ? `the daemon on port ${port} records its token in ${recorded} (${record})`
      : record !== undefined
        ? `no running daemon recorded its token file in ${record}: the daemon on port ${port} is not a tether daemon serve started with TETHER_PORT_RECORD_DIR (a daemon_cmd that clears the environment?) or was started by hand elsewhere`
        : `the daemon on port ${port} recorded no token file`;
  const fix =
    recorded !== undefined && state === 'alive' && recorded !== read
      ? `set token_file: ${recorded} for ${target.name} in ${target.configPath}, or remove token_file to read the recorded one`
      : `set token_file of ${target.name} in ${target.configPath} to the token file of the daemon on port ${port} (its --token-file, or <data-dir>/token)`;
  return new CliError('UNAUTHORIZED', `unauthorized: the daemon on ${target.name} (127.0.0.1:${port}) refused the token read from ${read}${configured}`, {
    hint: `compared the token in ${read} with the daemon's: ${compared}; ${fix}`,
    details: { tokenFile: read, ...(recorded !== undefined ? { recordedTokenFile: recorded } : {}) },
  });
}

/** Whether the started command (the shell that runs it) is still running. */
async function isRunning(connection: SshConnection, target: SshMachine, started: Started): Promise<boolean> {
  // No pid file yet: the detached shell has not run its first line.
  const file = target.ssh.shellQuote(started.pidFile);
  const result = await runSh(connection, `[ -s ${file} ] || exit 0; kill -0 "$(cat ${file})" 2>/dev/null`, target.ssh);
  return result.code === 0;
}

/** The last lines the started command wrote. */
async function outputTail(connection: SshConnection, target: SshMachine, started: Started): Promise<string[]> {
  const result = await runSh(connection, `tail -c +${started.logOffset + 1} ${target.ssh.shellQuote(started.log)} | tail -n ${TAIL_LINES}`, target.ssh).catch(() => undefined);
  return (result?.stdout.toString('utf8') ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
}

/** The error a `tether daemon serve` that exited printed (`{"error":{…}}`), as an error of the same code. */
async function reportedError(connection: SshConnection, target: SshMachine, started: Started): Promise<CliError | undefined> {
  const tail = await outputTail(connection, target, started);
  for (const line of [...tail].reverse()) {
    if (!line.startsWith('{"error":')) continue;
    try {
      const { error } = JSON.parse(line) as { error: { code?: string; message?: string; hint?: string } };
      if (typeof error?.code !== 'string') continue;
      return new CliError(error.code, `the daemon started on ${target.name} exited: ${error.message ?? error.code}`, {
        hint: `${error.hint ? `${error.hint}; ` : ''}its output is in ${started.log} on ${target.name}`,
      });
    } catch {
      // the line was cut: not a report
    }
  }
  return undefined;
}

function version(status: MachineStatus): string {
  return status.daemon_version ? ` (tether ${status.daemon_version})` : '';
}
