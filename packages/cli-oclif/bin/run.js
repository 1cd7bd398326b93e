#!/usr/bin/env node
// The `tether` command. Commands are found through oclif.manifest.json (written at build time),
// so start-up loads only the command being run.
import { execute, settings } from '@oclif/core';

// Always run the compiled commands, even when NODE_ENV is "development" or "test".
settings.enableAutoTranspile = false;
// `tether exec logs … | head -1`: the reader is gone, nothing more to say.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

await execute({ dir: import.meta.url });
// A command that is done has printed everything; do not wait for stray handles (sockets, timers),
// only for its output to reach the pipe (pipes are asynchronous on macOS).
const flushed = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', resolve)));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(process.exitCode ?? 0);
