import type { Writable } from 'node:stream';

/**
 * Writes to a command's stdin and settles once the bytes are in the pipe, so a command that does
 * not read holds the writer back.
 *
 * When the command exits, Node destroys its stdin and calls back a write still waiting for room
 * without an error, although the rest of its bytes never left. Such a write is refused here, so it
 * is not recorded as input the command was given.
 */
export function writeToStdin(stdin: Writable, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stdin.write(data, (error) => {
      if (error) reject(error);
      else if (stdin.destroyed) reject(new Error('the process ended before all of the write reached its stdin'));
      else resolve();
    });
  });
}
