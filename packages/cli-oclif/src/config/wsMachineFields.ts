import { z } from 'zod';

/**
 * The `ws` transport's machine fields (the CLI contributes this schema because
 * `@tether/transport-ws` exports none): `addr` and a token, given inline or as a file. Strict:
 * besides the fields every machine has, any other field is unknown.
 */
export const WsMachineFields = z
  .strictObject({
    addr: z.string().min(1, 'the daemon address: ws://host:port, wss://host:port, host:port or a socket path'),
    token: z.string().min(16, 'a token is at least 16 characters').optional(),
    token_file: z.string().min(1).optional(),
    ca_file: z.string().min(1).optional(),
  })
  .refine((m) => m.token !== undefined || m.token_file !== undefined, { message: 'set token or token_file (the daemon token)', path: ['token'] });
