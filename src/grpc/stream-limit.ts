import { resourceExhausted } from '../errors.js';

/**
 * Write and Read streams open at once, daemon-wide: each holds a socket, a lock or an S3
 * response, so one careless client opening thousands must not use up what others need.
 */
export class StreamLimit {
  private open = 0;

  constructor(readonly max: number) {}

  /** Takes a place, or fails with ResourceExhausted naming the limit; call the result once done. */
  enter(method: string): () => void {
    if (this.open >= this.max) {
      throw resourceExhausted(
        `${method}: ${this.open} streams are open, the most this daemon allows (--max-streams ${this.max}); retry once some have ended`,
      );
    }
    this.open++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.open--;
    };
  }
}
