import { z } from 'zod';

/**
 * The fields of a machine with `transport: cloud`:
 *
 * ```yaml
 * - name: gpu1
 *   transport: cloud
 *   relay: wss://relay.example:8443
 *   environment: gpu1                    # as the daemon registered it (default: the machine's name)
 *   fingerprint: SHA256:3q2+7w…          # the daemon's certificate (tether daemon fingerprint on gpu1)
 *   token_file: ~/.config/tether/gpu1.token          # the daemon's token (or token:)
 *   relay_token_file: ~/.config/tether/relay.token   # this client's relay credential (or relay_token:)
 *   relay_ca_file: ~/.config/tether/relay-ca.pem     # optional: a relay with a private certificate
 * ```
 */
export const machineSchema = z
  .looseObject({
    relay: z.string().regex(/^wss?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/, 'the relay URL: wss://host:port'),
    environment: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'an environment is 1-64 letters, digits, _ or -').optional(),
    fingerprint: z
      .string()
      .regex(/^(SHA256:[A-Za-z0-9+/]{43}=?|([0-9A-Fa-f]{2}:?){32})$/, 'a fingerprint is SHA256:<base64>, as tether daemon fingerprint prints it')
      .optional(),
    token: z.string().min(16, 'a token is at least 16 characters').optional(),
    token_file: z.string().min(1).optional(),
    relay_token: z.string().min(16, 'a relay token is at least 16 characters').optional(),
    relay_token_file: z.string().min(1).optional(),
    relay_ca_file: z.string().min(1).optional(),
  })
  .refine((m) => m.token !== undefined || m.token_file !== undefined, { message: 'set token or token_file (the daemon token)', path: ['token'] })
  .refine((m) => m.relay_token !== undefined || m.relay_token_file !== undefined, {
    message: 'set relay_token or relay_token_file (this client\'s relay credential: tether relay enroll --client NAME)',
    path: ['relay_token'],
  });

export type CloudMachineConfig = z.infer<typeof machineSchema> & { readonly name: string };
