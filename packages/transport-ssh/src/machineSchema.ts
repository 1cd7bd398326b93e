import { z } from 'zod';

/** The daemon's TCP port on a machine, unless its config says otherwise. */
export const DEFAULT_DAEMON_PORT = 7337;
/**
 * Where the daemon keeps its token on a machine by default (read over SSH; `~` is the remote
 * home). Without `token_file`, the transport reads the token file the daemon on `daemon_port`
 * recorded, else `${XDG_STATE_HOME:-~/.local/state}/tether/token` (see `readRemoteToken`).
 */
export const DEFAULT_TOKEN_FILE = '~/.local/state/tether/token';
/** The command that pipes an exec channel to the daemon when TCP forwarding is forbidden; `--connect 127.0.0.1:<daemon_port>` is appended. */
export const DEFAULT_BRIDGE_CMD = 'tether daemon bridge';
/** The command `machine up` runs (in the background) to start the daemon. */
export const DEFAULT_DAEMON_CMD = 'tether daemon serve';

/**
 * The fields of a machine config that the `ssh` transport reads (besides `name` and
 * `transport: ssh`). Unknown fields are left to other schemas.
 *
 * ```yaml
 * - name: gpu1
 *   transport: ssh
 *   ssh: alice@gpu1.example:22      # or a Host alias of ~/.ssh/config
 *   daemon_port: 7337               # the daemon's loopback port on gpu1
 *   token_file: ~/.local/state/tether/token   # on gpu1, read over SSH
 *   bridge_cmd: tether daemon bridge          # used verbatim when given
 *   daemon_cmd: tether daemon serve           # for `machine up`
 *   tunnel: true                              # through the CLI's persistent tunnel (default)
 * ```
 */
export const machineSchema = z.object({
  /** The SSH destination: `host`, `user@host`, `user@host:port` or a `Host` alias of `~/.ssh/config`. */
  ssh: z.string().trim().min(1, 'ssh must name a host (user@host:port or a Host alias)'),
  /** The daemon's TCP port on the machine's loopback interface. Default 7337. */
  daemon_port: z.coerce.number().int().min(1).max(65535).default(DEFAULT_DAEMON_PORT),
  /**
   * The daemon token file on the machine. Default: the one the daemon listening on `daemon_port`
   * recorded (`daemon serve` does), else `${XDG_STATE_HOME:-~/.local/state}/tether/token`.
   */
  token_file: z.string().min(1).optional(),
  /** The daemon token itself, instead of reading the token file over SSH. */
  token: z.string().min(16).optional(),
  /**
   * The command run over SSH when the server forbids TCP forwarding; its stdin/stdout must be
   * piped byte for byte to the daemon's listener. Default `tether daemon bridge --connect 127.0.0.1:<daemon_port>`.
   */
  bridge_cmd: z.string().min(1).optional(),
  /** The command that starts the daemon on the machine (for `machine up`). Default `tether daemon serve`. */
  daemon_cmd: z.string().min(1).optional(),
  /**
   * With `TunnelTransport` (the CLI's): `false` connects directly from each process instead of
   * through the persistent local tunnel. Default true. `SshTransport` ignores it.
   */
  tunnel: z.boolean().optional(),
});

export type SshMachineConfig = z.output<typeof machineSchema>;
