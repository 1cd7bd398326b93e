import { Subject } from 'rxjs';
import { TetherError } from '../errors.js';
import type { Channel } from '../transport.js';

/**
 * Two connected in-process channels: what one sends, the other receives (asynchronously, in
 * order). For tests and for embedding a daemon and its client in one process. `break()` on
 * either end simulates a dropped connection (both ends error with CONNECTION_LOST).
 */
export function createChannelPair(): [Channel & { break(): void }, Channel & { break(): void }] {
  const inboxes = [new Subject<string | Uint8Array>(), new Subject<string | Uint8Array>()] as const;
  let open = true;
  const end = (error?: TetherError) => {
    if (!open) return;
    open = false;
    queueMicrotask(() => {
      for (const inbox of inboxes) {
        if (error) inbox.error(error);
        else inbox.complete();
      }
    });
  };
  const side = (mine: 0 | 1) => ({
    messages$: inboxes[mine].asObservable(),
    bufferedAmount: 0,
    send(message: string | Uint8Array) {
      if (!open) throw new TetherError('CONNECTION_LOST', 'connection reset by peer: the channel is closed');
      const copy = typeof message === 'string' ? message : message.slice();
      queueMicrotask(() => open && inboxes[mine === 0 ? 1 : 0].next(copy));
    },
    close: () => end(),
    break: () => end(new TetherError('CONNECTION_LOST', 'connection reset by peer')),
  });
  return [side(0), side(1)];
}
