import { z } from 'zod';

/**
 * The fields of a machine with `transport: stdio` (besides `name` and `transport`). Strict: any
 * other field is an error in the CLI's config.
 *
 * ```yaml
 * - name: box
 *   transport: stdio
 *   command: [docker, exec, -i, box, tether, daemon, bridge]     # pipes stdin/stdout to the daemon
 *   token_command: [docker, exec, box, cat, /root/.local/state/tether/token]
 * ```
 */
export const machineSchema = z
  .strictObject({
    /** The command (argv, no shell) whose stdin/stdout are a byte stream to the daemon's listener: a bridge. */
    command: z.array(z.string().min(1)).min(1, 'command is the argv of a bridge, e.g. [docker, exec, -i, box, tether, daemon, bridge]'),
    /** A command (argv) that prints the daemon's token on stdout. */
    token_command: z.array(z.string().min(1)).min(1).optional(),
    /** Or a local file holding the token. */
    token_file: z.string().min(1).optional(),
  })
  .refine((m) => (m.token_command === undefined) !== (m.token_file === undefined), { message: 'set token_command or token_file (one of them)', path: ['token_command'] });

export type StdioMachineConfig = z.output<typeof machineSchema>;
