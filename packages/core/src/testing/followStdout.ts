import { createHash } from 'node:crypto';
import type { StoredEvent } from '../events.js';
import type { MachineApi } from '../machine.js';

/**
 * Follows execution `id` from seq 0 to its end, failing if a seq arrives out of turn (a gap or a
 * duplicate). Returns the sha256 and size of its stdout and the number of events; `onBytes` sees
 * the stdout bytes received so far after each chunk (e.g. to cut a connection mid-stream).
 */
export async function followStdout(
  machine: MachineApi,
  id: string,
  onBytes?: (bytes: number) => void,
): Promise<{ sha256: string; bytes: number; events: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let expected = 1;
  await new Promise<void>((resolve, reject) => {
    machine.exec.follow(id, 0).subscribe({
      next: (event: StoredEvent) => {
        if (event.seq !== expected) reject(new Error(`seq ${event.seq} arrived where ${expected} was expected`));
        expected = event.seq + 1;
        if (event.type === 'OutputProduced' && event.data.stream === 'stdout') {
          hash.update(event.data.data);
          bytes += event.data.data.byteLength;
          onBytes?.(bytes);
        }
      },
      error: reject,
      complete: resolve,
    });
  });
  return { sha256: hash.digest('hex'), bytes, events: expected - 1 };
}
