#!/usr/bin/env node
// The `tether` command. Commands are found through oclif.manifest.json (written at build time),
// so start-up loads only the command being run.
import { flush, run, settings } from '@oclif/core';

// Always run the compiled commands, even when NODE_ENV is "development" or "test".
settings.enableAutoTranspile = false;
// `tether exec logs … | head -1`: the reader is gone, nothing more to say.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

try {
  await run(process.argv.slice(2), import.meta.url);
  await flush();
} catch (error) {
  // tether's own commands report their errors themselves; this is for the others (plugins,
  // help, autocomplete): the same {"error":{…}} on stderr and exit codes. An intended exit
  // (oclif's this.exit(n)) just exits.
  if (error?.oclif?.exit !== undefined && error.code === 'EEXIT') process.exitCode = error.oclif.exit;
  else {
    const { CliError, describeError, isCliError } = await import('../dist/cliError.js');
    const command = process.argv.slice(2).filter((a) => !a.startsWith('-')).slice(0, 2).join(':');
    // A plain Error here comes from a plugin's command that failed, not from tether's code.
    const plain = error instanceof Error && !isCliError(error) && error.oclif === undefined && !error[Symbol.for('tether.TetherError')];
    const { json, exitCode } = describeError(plain ? new CliError('COMMAND_FAILED', error.message.split('\n')[0]) : error, { command });
    process.stderr.write(`${JSON.stringify(json)}\n`);
    process.exitCode = exitCode;
  }
}
// A command that is done has printed everything; do not wait for stray handles (sockets, timers),
// only for its output to reach the pipe (pipes are asynchronous on macOS).
const flushed = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', resolve)));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(process.exitCode ?? 0);
