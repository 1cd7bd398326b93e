import { connect, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { TetherError } from '@tether/core';

/** Where the daemon listens: a Unix socket, or a TCP port (on loopback, normally). */
export type BridgeTarget = { readonly socketPath: string } | { readonly host: string; readonly port: number };

/** The streams to bridge. Default: `process.stdin` and `process.stdout`. */
export interface BridgeStreams {
  readonly input?: Readable;
  readonly output?: Writable;
}

/**
 * Pipes `input` to the daemon's listener and the listener's replies to `output`, byte for byte,
 * until either side ends: what `tether daemon bridge` runs on a machine whose SSH server forbids
 * TCP forwarding (the client then speaks WebSocket over the command's stdin/stdout). Resolves
 * once both directions are done; fails with `CONNECTION_LOST` ("connection refused") when nothing
 * listens there, or when the connection breaks.
 */
export function bridgeStdio(target: BridgeTarget, streams: BridgeStreams = {}): Promise<void> {
  const input = streams.input ?? process.stdin;
  const output = streams.output ?? process.stdout;
  const where = 'socketPath' in target ? target.socketPath : `${target.host}:${target.port}`;
  return new Promise<void>((resolve, reject) => {
    const socket: Socket = 'socketPath' in target ? connect(target.socketPath) : connect(target.port, target.host);
    let connected = false;
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      input.unpipe(socket);
      input.pause();
      socket.destroy();
      if (error === undefined) return resolve();
      const errno = (error as NodeJS.ErrnoException).code;
      reject(
        connected
          ? new TetherError('CONNECTION_LOST', `connection reset by peer: the daemon at ${where} (${errno ?? error.message})`, { errno }, { cause: error })
          : new TetherError('CONNECTION_LOST', `connection refused: no daemon listens at ${where} (${errno ?? error.message})`, { errno }, { cause: error }),
      );
    };
    socket.once('connect', () => {
      connected = true;
      socket.setNoDelay(true);
      input.pipe(socket);
      socket.pipe(output, { end: false });
    });
    socket.once('error', finish);
    // The client hung up (stdin closed): let the daemon see the end, then stop once it closes too.
    input.once('end', () => {
      if (!connected) finish();
    });
    input.once('error', (error: Error) => finish(error));
    output.once('error', (error: Error) => finish(error));
    socket.once('close', () => {
      // Resolve once what was piped has left, so a caller that exits right after does not cut it.
      if (output.writable) output.write('', () => finish());
      else finish();
    });
  });
}
