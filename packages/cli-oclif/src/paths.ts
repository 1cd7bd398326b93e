import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where the CLI keeps its files. Every path honours the XDG base-directory variables. */
export interface TetherPaths {
  /** The config file: `$XDG_CONFIG_HOME/tether/config.yaml` (default `~/.config/tether/config.yaml`). */
  readonly configFile: string;
  /** The local daemon's directory: `$XDG_STATE_HOME/tether` (default `~/.local/state/tether`). */
  readonly stateDir: string;
  /** codex-remote's config file, `~/.config/codex-remote/config.yaml`: read when tether has none. */
  readonly codexRemoteConfigFile: string;
}

/** The local daemon's files inside its data directory. */
export interface DaemonFiles {
  readonly dataDir: string;
  /** Unix socket, mode 0600. */
  readonly socket: string;
  /** Token file, mode 0600, created by the daemon on first start. */
  readonly token: string;
  /** Pid of the running daemon, written once it serves and removed when it stops. */
  readonly pid: string;
  /** Log of a daemon started in the background by the CLI. */
  readonly log: string;
}

export function tetherPaths(env: NodeJS.ProcessEnv = process.env): TetherPaths {
  const home = env['HOME'] || homedir();
  const configHome = env['XDG_CONFIG_HOME'] || join(home, '.config');
  const stateHome = env['XDG_STATE_HOME'] || join(home, '.local', 'state');
  return {
    configFile: join(configHome, 'tether', 'config.yaml'),
    stateDir: join(stateHome, 'tether'),
    codexRemoteConfigFile: join(home, '.config', 'codex-remote', 'config.yaml'),
  };
}

export function daemonFiles(dataDir: string): DaemonFiles {
  return {
    dataDir,
    socket: join(dataDir, 'daemon.sock'),
    token: join(dataDir, 'token'),
    pid: join(dataDir, 'daemon.pid'),
    log: join(dataDir, 'daemon.log'),
  };
}

/**
 * The record `daemon serve` keeps while it listens on TCP `port`: its pid and its token file, one
 * a line, in `dir` (`$TETHER_PORT_RECORD_DIR`, else its state directory). The ssh transport reads
 * it (`daemon-port-<port>`, see its `readRemoteToken`) to find the token of the daemon it reaches,
 * whatever that daemon's environment or flags.
 */
export function portRecord(dir: string, port: number): string {
  return join(dir, `daemon-port-${port}`);
}

/** The TCP port of a `--listen` address (`127.0.0.1:7337`, `[::1]:7337`), or undefined for a socket path. */
export function listenPort(address: string): number | undefined {
  if (address.startsWith('/') || address.startsWith('unix:') || address.startsWith('.')) return undefined;
  const match = /:(\d{1,5})$/.exec(address);
  return match ? Number(match[1]) : undefined;
}
