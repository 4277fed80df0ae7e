/**
 * What this process is doing to the ingest of a ref besides a stream writing it: an open taking
 * it up, or its giving up (an Abort, a stream discarding it, the expiry sweep), by ingestKey.
 * Each acts on the record and stored bytes the other is taking up or giving up: an open meanwhile
 * would continue an upload on its way to being discarded, a giving up meanwhile would discard
 * the one an open just took up (and the record it wrote). So a ref has one at a time, and the
 * one that finds another under way is refused (an open, as locked), waits for it (an Abort), or
 * leaves the ref for later (the sweep).
 */
export class RefWork {
  /**
   * Refs an open is under way for, since when. Taking up a recorded ingest reads its checkpoint
   * back (a whole blob's bytes, minutes for a large one): a client retrying, or a second one,
   * would start another read of it for every open.
   */
  private readonly opening = new Map<string, Date>();
  /** Refs whose ingest is being given up, since when: its record or upload is on its way out. */
  private readonly closing = new Map<string, Date>();

  /** Since when an open or a giving up has the ref, if one has. */
  since(key: string): Date | undefined {
    return this.opening.get(key) ?? this.closing.get(key);
  }

  /** Runs an open of the ref; the caller found `since(key)` undefined in this same turn. */
  async open<T>(key: string, work: () => Promise<T>): Promise<T> {
    this.opening.set(key, new Date());
    try {
      return await work();
    } finally {
      this.opening.delete(key);
    }
  }

  /** Runs the giving up of the ref's ingest; opens meanwhile are refused as locked. */
  async givingUp<T>(key: string, work: () => Promise<T>): Promise<T> {
    this.closing.set(key, new Date());
    try {
      return await work();
    } finally {
      this.closing.delete(key);
    }
  }
}
