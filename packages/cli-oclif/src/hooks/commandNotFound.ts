import type { Hook } from '@oclif/core';
import { describeError, CliError } from '../cliError.js';

/** An unknown command is a usage error like any other: JSON on stderr, exit code 2. */
const hook: Hook<'command_not_found'> = async function ({ id }) {
  const shown = id.replaceAll(':', ' ');
  const { json, exitCode } = describeError(
    new CliError('USAGE', `unknown command: ${shown}`, { hint: 'list the commands with tether --help (topics: machine, exec, file, gpu, daemon, plugins)' }),
  );
  await new Promise((resolve) => process.stderr.write(`${JSON.stringify(json)}\n`, resolve));
  process.exit(exitCode);
};

export default hook;
