import { z } from 'zod';

const path = z.string().min(1);
const ms = z.number().int().min(0);

/**
 * The plugin's config (all optional): `SshTransportOptions` as YAML/JSON can state them. Unknown
 * keys are refused, so a typo shows up as a plugin load failure instead of being ignored.
 *
 * ```yaml
 * plugins:
 *   "@tether/transport-ssh": { keepaliveIntervalMs: 15000, idleTimeoutMs: 5000 }
 * ```
 */
export const pluginConfig = z.strictObject({
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
  idleTimeoutMs: ms.optional(),
  handshakeTimeoutMs: ms.optional(),
  maxPayloadBytes: z.number().int().positive().optional(),
});
