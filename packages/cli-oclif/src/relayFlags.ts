import { Flags } from '@oclif/core';
import { CliError } from './cliError.js';

/** Which relay an operator command talks to. */
export const relayTargetFlags = {
  'data-dir': Flags.string({ description: 'the data dir of the relay serving on this machine (default: $XDG_STATE_HOME/tether/relay)' }),
  relay: Flags.string({ description: 'a relay elsewhere: wss://HOST:PORT (with --admin-token-file)' }),
  'admin-token-file': Flags.string({ description: "the relay operator's token (default: <data-dir>/admin-token)" }),
  'relay-ca-file': Flags.string({ description: 'trust this CA (PEM) for a relay with a private certificate' }),
};

/** The environment or client an operator command is about. */
export const subjectFlags = {
  environment: Flags.string({ description: 'an environment: the name a daemon registers', exclusive: ['client'] }),
  client: Flags.string({ description: 'a client (a person, an agent, a laptop) that connects through the relay', exclusive: ['environment'] }),
};

export function subjectOf(flags: { environment?: string; client?: string }): { kind: 'environment' | 'client'; name: string } {
  if (flags.environment !== undefined) return { kind: 'environment', name: flags.environment };
  if (flags.client !== undefined) return { kind: 'client', name: flags.client };
  throw new CliError('USAGE', 'say which credential: --environment NAME or --client NAME', { hint: 'e.g. tether relay enroll --environment gpu1' });
}
