import { Observable, type Subscribable } from 'rxjs';
import { TetherError } from './errors.js';
import { isTerminal, type StoredEvent } from './events.js';

/**
 * Builds a store's `follow`: replays stored events page by page, then goes live, with no gap
 * and no duplicate even when events are appended while the replay runs. Completes after a
 * terminal event.
 *
 * `live` must emit every event of the stream as it is appended, in seq order. It is subscribed
 * before the replay starts; live events that arrive meanwhile are held and released once the
 * replay has caught up, skipping those the replay already delivered.
 *
 * @param readAfter reads up to a page of stored events with seq > afterSeq, oldest first
 */
export function replayThenLive(
  afterSeq: number,
  readAfter: (afterSeq: number) => Promise<readonly StoredEvent[]>,
  live: Subscribable<StoredEvent>,
): Observable<StoredEvent> {
  return new Observable<StoredEvent>((subscriber) => {
    let last = afterSeq;
    let replaying = true;
    let held: StoredEvent[] = [];
    let done = false;

    const deliver = (event: StoredEvent): void => {
      if (done || event.seq <= last) return;
      if (event.seq !== last + 1) {
        // A hole means the live feed skipped something: read it from the store instead.
        replaying = true;
        held.push(event);
        void catchUp();
        return;
      }
      last = event.seq;
      subscriber.next(event);
      if (isTerminal(event)) {
        done = true;
        subscriber.complete();
      }
    };

    const liveSubscription = live.subscribe({
      next: (event) => (replaying ? held.push(event) : deliver(event)),
      error: (error: unknown) => subscriber.error(error),
      complete: () => {
        if (!done) subscriber.error(new TetherError('STORE_CLOSED'));
      },
    });

    let running = false;
    const catchUp = async (): Promise<void> => {
      if (running) return;
      running = true;
      try {
        do {
          for (;;) {
            const page = await readAfter(last);
            if (done || subscriber.closed) return;
            if (page.length === 0) break;
            for (const event of page) deliver(event);
            if (done) return;
          }
          // Caught up with the store: release what arrived live meanwhile, in order. A hole
          // among them sets `replaying` again and sends us back to the store.
          const pending = held.sort((a, b) => a.seq - b.seq);
          held = [];
          replaying = false;
          for (const event of pending) deliver(event);
        } while (replaying && !done);
      } catch (error) {
        subscriber.error(error);
      } finally {
        running = false;
      }
    };
    void catchUp();

    return () => {
      done = true;
      liveSubscription.unsubscribe();
    };
  });
}
