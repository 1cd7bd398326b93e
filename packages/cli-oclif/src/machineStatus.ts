import { CliError, describeError } from './cliError.js';
import type { Machines } from './machines.js';
import { sshMachine } from './sshMachine.js';
import { storeStatus } from './storeStatus.js';

/** Failures that happen after the SSH login succeeded: the machine is reachable, its daemon is not. */
const AFTER_LOGIN = new Set(['daemon-not-running', 'no-token', 'bad-token', 'bridge-failed']);
/** Failures of the SSH login itself (`host-key-*` too). */
const LOGIN_FAILED = new Set(['auth-failed', 'key-encrypted', 'no-identity', 'agent-failed', 'proxy-command']);

/** `machine check` / `machine list`: one machine's health, as the contract prints it. */
export interface MachineStatus {
  readonly name: string;
  /** `local` for the local daemon, else the config's transport. */
  readonly transport: string | null;
  /** null for transports without SSH. */
  readonly ssh_ok: boolean | null;
  /** Cloud machines only: the relay answered and accepted this client's credential. */
  readonly relay_ok?: boolean;
  readonly daemon_ok: boolean;
  /** Round trip of a health call once connected. */
  readonly latency_ms: number | null;
  readonly checked_at: string;
  readonly daemon_version?: string;
  /**
   * The daemon's event store, when the daemon reports it and it cannot write (then `daemon_ok`
   * is false and `error`/`hint` say why): `{"ok":false,"code","message","dir","since","retries","hint"}`.
   */
  readonly store?: Record<string, unknown>;
  /** The daemon's TCP port as configured (`daemon_port`, or the port of a ws machine's `addr`); absent when none is (the local daemon's socket, an ssh bridge, a relay). */
  readonly daemon_port?: number;
  /** Where the daemon is reached directly (a ws machine's `addr`), as codex-remote's check reports it. */
  readonly daemon_addr?: string;
  /**
   * Why it failed. When the machine was reached (its SSH login worked, or it has no SSH) but its
   * daemon did not answer, the message carries a phrase agents triage on: its own (`unauthorized`,
   * `connection refused`, `connection reset by peer`, `timeout`), else codex-remote's
   * `daemon not healthy: ` before it.
   */
  readonly error?: string;
  /** What to do about `error` (the hint the CLI prints with that error). */
  readonly hint?: string;
  /** The failure as the CLI reports errors (kept out of the JSON; for the exit code). */
  readonly failure?: unknown;
}

/** Connects (starting the local daemon if needed), asks for health and version; never throws for an unreachable machine. */
export async function checkMachine(machines: Machines, name: string, timeoutMs: number): Promise<MachineStatus> {
  const checkedAt = new Date().toISOString();
  const deadline = Date.now() + timeoutMs;
  let transport: string | null = name === 'local' ? 'local' : null;
  let endpoint: { daemon_port?: number; daemon_addr?: string } = {};
  try {
    if (name !== 'local') {
      const configured = (await machines.config()).machines.find((m) => m.config.name === name);
      transport = configured?.config.transport ?? null;
      if (configured) endpoint = endpointOf(configured.config);
    }
    const opened = await withTimeout(machines.open(name, { connectTimeoutMs: timeoutMs }), deadline, name);
    const started = performance.now();
    const health = await withTimeout(opened.machine.health(), deadline, name);
    const latency = Math.round((performance.now() - started) * 10) / 10;
    const info = await withTimeout(opened.machine.info(), deadline, name);
    return {
      name,
      transport,
      ssh_ok: transport === 'ssh' ? true : null,
      ...(transport === 'cloud' ? { relay_ok: true } : {}),
      daemon_ok: health.ok,
      latency_ms: latency,
      checked_at: checkedAt,
      daemon_version: info.version,
      ...(health.store && !health.store.ok ? storeFailure(storeStatus(health.store)) : {}),
      ...endpoint,
    };
  } catch (error) {
    const { json } = describeError(error, { machine: name, ...(transport === null ? {} : { transport }) });
    const sshOk = transport === 'ssh' ? await sshWorks(machines, name, error, deadline) : null;
    const relayOk = transport === 'cloud' ? relayWorked(error) : undefined;
    // codex-remote's two findings: SSH itself fails, or the machine is reached and its daemon is not healthy.
    const reached = sshOk !== false && relayOk !== false && !checkCouldNotRun(error);
    return {
      name,
      transport,
      ssh_ok: sshOk,
      ...(relayOk !== undefined ? { relay_ok: relayOk } : {}),
      daemon_ok: false,
      latency_ms: null,
      checked_at: checkedAt,
      ...endpoint,
      error: reached && !TRIAGED.test(json.error.message) ? `${NOT_HEALTHY}${json.error.message}` : json.error.message,
      hint: json.error.hint,
      failure: error,
    };
  }
}

/** The fields of a daemon that answers but whose event store cannot write. */
function storeFailure(store: Record<string, unknown>): Pick<MachineStatus, 'store' | 'error' | 'hint'> {
  return { store, error: String(store['message']), hint: String(store['hint']) };
}

/**
 * Whether SSH itself works when reaching the daemon failed: from the failure's reason when it
 * tells (a daemon that is not running is only found after logging in), else by logging in alone
 * within what is left of the time. When the daemon answered, SSH evidently worked.
 */
async function sshWorks(machines: Machines, name: string, error: unknown, deadline: number): Promise<boolean> {
  const details = (error as { details?: Readonly<Record<string, unknown>> }).details ?? {};
  if (typeof details['sshOk'] === 'boolean') return details['sshOk'];
  const reason = details['reason'];
  if (typeof reason === 'string') {
    if (AFTER_LOGIN.has(reason)) return true;
    if (LOGIN_FAILED.has(reason) || reason.startsWith('host-key-')) return false;
  }
  const left = deadline - Date.now();
  if (left <= 0) return false;
  try {
    const target = await sshMachine(machines, name, 'machine check');
    const connection = await target.ssh.sshConnect(target.config.ssh, { ...target.connectOptions, forwardAgent: false, readyTimeoutMs: left, signal: AbortSignal.timeout(left) });
    connection.close();
    return true;
  } catch {
    return false;
  }
}

/** Failures that mean the check itself could not run (usage, config, unknown machine or transport), as opposed to a machine that did not answer. */
const NOT_A_CHECK = new Set(['USAGE', 'INVALID_ARGUMENT', 'CONFIG_INVALID', 'UNKNOWN_MACHINE', 'TRANSPORT_UNAVAILABLE']);

/** Whether `failure` (a Status's) is an error of the caller or the config rather than a finding about the machine. */
export function checkCouldNotRun(failure: unknown): boolean {
  const code = (failure as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NOT_A_CHECK.has(code);
}

const NOT_HEALTHY = 'daemon not healthy: ';
/** Messages that already carry one of the phrases agents triage on keep their own words. */
const TRIAGED = /daemon not healthy|unauthorized|connection (refused|reset by peer)|timeout|unknown machine/;

/** The daemon's port and direct address as the machine's config gives them. */
function endpointOf(config: Readonly<Record<string, unknown>>): { daemon_port?: number; daemon_addr?: string } {
  if (typeof config['daemon_port'] === 'number') return { daemon_port: config['daemon_port'] };
  const addr = config['addr'];
  if (typeof addr !== 'string') return {};
  const port = /^(?:(?:wss?|https?):\/\/)?(?:\[[^\]]*\]|[^/:]+):(\d+)(?:\/|$)/.exec(addr)?.[1];
  return { ...(port === undefined ? {} : { daemon_port: Number(port) }), daemon_addr: addr };
}

/** Whether the relay answered and took the client credential, as the cloud transport's failure says (a pairing or session failure implies it did). */
function relayWorked(error: unknown): boolean {
  const details = (error as { details?: Readonly<Record<string, unknown>> }).details ?? {};
  if (typeof details['relayOk'] === 'boolean') return details['relayOk'];
  const cause = (error as { cause?: unknown }).cause;
  return cause !== undefined && cause !== error ? relayWorked(cause) : false;
}

/** The status without the internal `failure`. */
export function statusJson(status: MachineStatus): Omit<MachineStatus, 'failure'> {
  const { failure: _failure, ...json } = status;
  return json;
}

function withTimeout<T>(promise: Promise<T>, deadline: number, name: string): Promise<T> {
  const left = Math.max(0, deadline - Date.now());
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CliError('CONNECTION_LOST', `connection refused: machine ${name} did not answer within ${Math.round(left / 100) / 10}s`)),
      left,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
