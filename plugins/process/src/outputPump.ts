import { Observable, Subject } from 'rxjs';
import type { OutputChunk } from '@tether/core';

/**
 * The output side of one process: hands chunks to the subscribers of `output$` in the order they
 * were read, and tells its source whether to read at all. The source reads only while it is
 * `flowing`: someone is subscribed and nobody paused. Chunks pushed while not flowing are kept
 * (the pty source can deliver a few after it was told to stop) and handed over on resume.
 *
 * `output$` is hot: a subscriber sees the chunks read after it subscribed; one that subscribes
 * after the end sees only completion.
 */
export class OutputPump {
  readonly output$: Observable<OutputChunk>;
  readonly #subject = new Subject<OutputChunk>();
  readonly #kept: OutputChunk[] = [];
  readonly #onFlowChange: (flowing: boolean) => void;
  #subscribers = 0;
  #paused = false;
  #ending = false;
  #completed = false;
  #delivering = false;
  #wasFlowing = false;

  /** `onFlowChange` is called whenever `flowing` changes; the source starts or stops reading. */
  constructor(onFlowChange: (flowing: boolean) => void) {
    this.#onFlowChange = onFlowChange;
    this.output$ = new Observable<OutputChunk>((subscriber) => {
      if (this.#completed) {
        subscriber.complete();
        return undefined;
      }
      const subscription = this.#subject.subscribe(subscriber);
      this.#subscribers++;
      this.#update();
      return () => {
        subscription.unsubscribe();
        this.#subscribers--;
        this.#update();
      };
    });
  }

  /** True while the source should read. */
  get flowing(): boolean {
    return this.#subscribers > 0 && !this.#paused && !this.#completed;
  }

  get completed(): boolean {
    return this.#completed;
  }

  pause(): void {
    this.#paused = true;
    this.#update();
  }

  resume(): void {
    this.#paused = false;
    this.#update();
  }

  /** A chunk the source read: delivered now if flowing, else kept until it is. */
  push(chunk: OutputChunk): void {
    if (this.#completed || chunk.data.byteLength === 0) return;
    if (this.flowing && this.#kept.length === 0 && !this.#delivering) {
      this.#delivering = true;
      try {
        this.#subject.next(chunk);
      } finally {
        this.#delivering = false;
      }
      this.#deliverKept();
    } else {
      this.#kept.push(chunk);
    }
  }

  /** The source has read everything: complete once the kept chunks are delivered. */
  end(): void {
    this.#ending = true;
    this.#update();
  }

  #update(): void {
    this.#deliverKept();
    const flowing = this.flowing;
    if (flowing !== this.#wasFlowing) {
      this.#wasFlowing = flowing;
      this.#onFlowChange(flowing);
    }
  }

  #deliverKept(): void {
    // A subscriber may pause or resume from inside `next`; the outer loop carries on.
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (this.flowing && this.#kept.length > 0) this.#subject.next(this.#kept.shift()!);
    } finally {
      this.#delivering = false;
    }
    if (this.#ending && this.#kept.length === 0 && !this.#completed) {
      this.#completed = true;
      this.#subject.complete();
    }
  }
}
