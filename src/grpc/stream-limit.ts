import { resourceExhausted } from '../errors.js';

/** A stream that can give its place up: one waiting for a client that takes nothing. */
export interface Preemptible {
  /** How long it has waited for its client to take a message (0 while it does not wait). */
  stalledFor(now: number): number;
  /**
   * Ends it (its client sees it reset or ended with ResourceExhausted); false when it cannot be
   * ended (a grpc-js whose streams cannot be reset), and then it keeps its place.
   */
  preempt(): boolean;
}

/**
 * A stream stalled this long gives its place to a new one when all are taken: its client has
 * taken nothing for a while, and may hold it for the whole --stream-idle-timeout.
 */
export const PREEMPT_AFTER_MS = 10_000;

/**
 * Write and Read streams open at once, daemon-wide: each holds a socket, a lock or an S3
 * response, so one careless client opening thousands must not use up what others need. Once
 * all are taken, the server stream whose client has taken nothing for longest (10 s at least)
 * is ended for a new one: one client's stalled Reads could otherwise refuse every other
 * client's calls until --stream-idle-timeout (10 minutes).
 */
export class StreamLimit {
  private open = 0;
  /** Open streams that can give their place up, with what gives it back. */
  private readonly preemptible = new Map<Preemptible, () => void>();

  constructor(readonly max: number) {}

  /** Takes a place, or fails with ResourceExhausted naming the limit; call the result once done. */
  enter(method: string, stream?: Preemptible): () => void {
    if (this.open >= this.max && !this.preemptOne()) {
      throw resourceExhausted(
        `${method}: ${this.open} streams are open, the most this daemon allows (--max-streams ${this.max}); retry once some have ended`,
      );
    }
    this.open++;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      this.open--;
      if (stream) this.preemptible.delete(stream);
    };
    if (stream) this.preemptible.set(stream, leave);
    return leave;
  }

  private preemptOne(): boolean {
    const now = performance.now();
    const stalled: [Preemptible, number][] = [];
    for (const stream of this.preemptible.keys()) {
      const waited = stream.stalledFor(now);
      if (waited >= PREEMPT_AFTER_MS) stalled.push([stream, waited]);
    }
    stalled.sort((a, b) => b[1] - a[1]);
    for (const [stream] of stalled) {
      const leave = this.preemptible.get(stream)!;
      if (!stream.preempt()) {
        // it still holds what it held: its place stays counted, and it is not asked again
        this.preemptible.delete(stream);
        continue;
      }
      // its place is given back now, not once its handler has unwound: the new stream takes it
      leave();
      return true;
    }
    return false;
  }
}
