import type { OpenRead } from './open-read.js';

/** Deleted blobs remembered at once (about 100 bytes each). */
const MAX_DROPPED = 65_536;

/**
 * GET responses left open after a Read that stopped short of the end, so that the next Read at
 * that offset continues on them. Bounded in number; an unclaimed one is closed after a while.
 * `ctr content get` parks a response after every 32 KiB Read: one sweep a tenth of the idle time
 * closes the unclaimed ones, where a timer for each parking cost more than the Read's own work.
 *
 * A response continued Read after Read serves the blob as it was when it was opened: one opened
 * more than `wordMs` ago is not continued (the next Read asks S3 again, and a blob deleted since,
 * by another daemon or a lifecycle rule, answers NotFound), and none opened before this
 * daemon's own delete of its blob is parked again.
 */
export class ParkedReads {
  /** In the order they were parked: the first is the oldest. */
  private readonly parked = new Map<string, { read: OpenRead; at: number }>();
  /** When this daemon deleted each blob, kept while a response opened before could be parked. */
  private readonly dropped = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
    private readonly wordMs = 30_000,
  ) {
    this.sweeper = setInterval(() => this.closeIdle(), Math.max(100, idleMs / 10));
    this.sweeper.unref();
  }

  take(digest: string, position: number): OpenRead | undefined {
    const key = `${digest}@${position}`;
    const entry = this.parked.get(key);
    if (!entry) return undefined;
    this.parked.delete(key);
    // a response that broke while parked is no use, nor one whose word is too old: the Read
    // opens a new one
    if (entry.read.failed || performance.now() - entry.read.openedAt > this.wordMs) {
      entry.read.close();
      return undefined;
    }
    entry.read.continued();
    return entry.read;
  }

  park(read: OpenRead): void {
    const droppedAt = this.dropped.get(read.digest);
    if (droppedAt !== undefined && droppedAt >= read.openedAt) {
      read.close();
      return;
    }
    const key = `${read.digest}@${read.position}`;
    const replaced = this.parked.get(key);
    if (replaced) {
      this.parked.delete(key);
      if (replaced.read !== read) replaced.read.close();
    }
    // a monotonic clock: the sweep stops at the first entry not yet idle, which a wall clock
    // stepped back would make a long-parked one
    this.parked.set(key, { read, at: performance.now() });
    for (const [oldest, entry] of this.parked) {
      if (this.parked.size <= this.max) break;
      this.parked.delete(oldest);
      entry.read.close();
    }
    read.readAhead();
  }

  drop(digest: string): void {
    // a Read under way on a response opened before parks it no more
    this.dropped.delete(digest);
    this.dropped.set(digest, performance.now());
    // a collector deleting thousands at once: the oldest are forgotten first (past wordMs anyway)
    for (const oldest of this.dropped.keys()) {
      if (this.dropped.size <= MAX_DROPPED) break;
      this.dropped.delete(oldest);
    }
    for (const [key, entry] of [...this.parked]) {
      if (entry.read.digest !== digest) continue;
      this.parked.delete(key);
      entry.read.close();
    }
  }

  /** Closes the response parked longest; false when none is. */
  closeOldest(): boolean {
    for (const [key, entry] of this.parked) {
      this.parked.delete(key);
      entry.read.close();
      return true;
    }
    return false;
  }

  closeAll(): void {
    clearInterval(this.sweeper);
    for (const entry of this.parked.values()) entry.read.close();
    this.parked.clear();
  }

  private closeIdle(): void {
    // a response opened before a delete this old is not continued anyway (wordMs)
    const forgotten = performance.now() - this.wordMs;
    for (const [digest, at] of this.dropped) {
      if (at > forgotten) break;
      this.dropped.delete(digest);
    }
    const before = performance.now() - this.idleMs;
    for (const [key, entry] of this.parked) {
      if (entry.at > before) break;
      this.parked.delete(key);
      entry.read.close();
    }
  }
}
