import type { Hook } from '@oclif/core';
import { closest, distance } from 'fastest-levenshtein';
import { describeError, CliError } from '../cliError.js';

/**
 * An unknown command is a usage error like any other: JSON on stderr, exit code 2, with the
 * closest command as a suggestion (`tether exec strat` → "did you mean exec start?") instead of
 * a prompt (agents read stderr; nobody answers a prompt).
 */
const hook: Hook<'command_not_found'> = async function ({ id, config }) {
  const shown = id.replaceAll(':', ' ');
  const visible = config.commands.filter((c) => !c.hidden).map((c) => c.id);
  const best = visible.length > 0 ? closest(id, visible) : undefined;
  const near = best !== undefined && distance(id, best) <= Math.max(2, Math.floor(best.length / 3)) ? best.replaceAll(':', ' ') : undefined;
  const topics = [...new Set(visible.map((c) => c.split(':')[0]!))].sort().join(', ');
  const { json, exitCode } = describeError(
    new CliError('USAGE', `unknown command: ${shown}${near ? ` (did you mean ${near}?)` : ''}`, {
      hint: near ? `run tether ${near} --help` : `list the commands with tether commands or tether --help (topics: ${topics})`,
    }),
  );
  await new Promise((resolve) => process.stderr.write(`${JSON.stringify(json)}\n`, resolve));
  process.exit(exitCode);
};

export default hook;
