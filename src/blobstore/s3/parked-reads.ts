import type { OpenRead } from './open-read.js';

/**
 * GET responses left open after a Read that stopped short of the end, so that the next Read at
 * that offset continues on them. Bounded in number; an unclaimed one is closed after a while.
 * `ctr content get` parks a response after every 32 KiB Read: one sweep a tenth of the idle time
 * closes the unclaimed ones, where a timer for each parking cost more than the Read's own work.
 */
export class ParkedReads {
  /** In the order they were parked: the first is the oldest. */
  private readonly parked = new Map<string, { read: OpenRead; at: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
  ) {
    this.sweeper = setInterval(() => this.closeIdle(), Math.max(100, idleMs / 10));
    this.sweeper.unref();
  }

  take(digest: string, position: number): OpenRead | undefined {
    const key = `${digest}@${position}`;
    const entry = this.parked.get(key);
    if (!entry) return undefined;
    this.parked.delete(key);
    // a response that broke while parked is no use: the Read opens a new one
    if (entry.read.failed) {
      entry.read.close();
      return undefined;
    }
    return entry.read;
  }

  park(read: OpenRead): void {
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
    const before = performance.now() - this.idleMs;
    for (const [key, entry] of this.parked) {
      if (entry.at > before) break;
      this.parked.delete(key);
      entry.read.close();
    }
  }
}
