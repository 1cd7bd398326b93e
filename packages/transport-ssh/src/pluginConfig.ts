import { MAX_TIMER_MS } from '@tether/core';
import { z } from 'zod';

const path = z.string().min(1);
// Timers hold at most 2^31 - 1 ms; a longer value would fire at once, so it is refused.
const ms = z.number().int().min(0).max(MAX_TIMER_MS, `at most ${MAX_TIMER_MS} ms (about 24.8 days)`);

/**
 * How to open SSH connections (`SshConnectOptions` as JSON can state them): where the ssh
 * config, keys and known_hosts are, and keepalive. Unknown keys are refused. The persistent
 * tunnel process receives these.
 */
export const sshOptionsSchema = z.strictObject({
  home: path.optional(),
  configFile: path.nullable().optional(),
  systemConfigFile: path.nullable().optional(),
  localUser: z.string().min(1).optional(),
  agent: path.nullable().optional(),
  identityFiles: z.array(path).optional(),
  knownHostsFiles: z.array(path).optional(),
  keepaliveIntervalMs: ms.optional(),
  keepaliveCountMax: z.number().int().min(1).optional(),
  readyTimeoutMs: ms.optional(),
});

/**
 * The plugin's config (all optional): `SshTransportOptions` as YAML/JSON can state them, and the
 * persistent tunnel's. Unknown keys are refused, so a typo shows up as a plugin load failure
 * instead of being ignored.
 *
 * With `tunnelStateDir`, the plugin's `ssh` transport is a `TunnelTransport`: every connection
 * goes through a background tunnel process per machine, which keeps one SSH connection open for
 * the next short-lived process (the CLI sets this). Without it, connections are made in this
 * process (`SshTransport`), which suits a long-lived process that embeds the kernel.
 *
 * ```yaml
 * plugins:
 *   "@tether/transport-ssh": { keepaliveIntervalMs: 15000, idleTimeoutMs: 5000 }
 * ```
 */
export const pluginConfig = sshOptionsSchema.extend({
  idleTimeoutMs: ms.optional(),
  handshakeTimeoutMs: ms.optional(),
  maxPayloadBytes: z.number().int().positive().optional(),
  /** Route connections through persistent tunnel processes whose files live in `<tunnelStateDir>/tunnels/`. Default: no tunnel. */
  tunnelStateDir: path.optional(),
  /** A tunnel exits after this long without connections. Default 10 minutes. */
  tunnelIdleTimeoutMs: ms.optional(),
  /** Write one JSON line of tunnel telemetry on stderr per connection. Default false. */
  tunnelVerbose: z.boolean().optional(),
});
