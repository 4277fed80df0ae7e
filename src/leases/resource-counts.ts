import { LRUCache } from 'lru-cache';
import { countBound } from '../lru.js';

/** A place taken for one resource; say how its write ended. */
export interface Reservation {
  written(): void;
  failed(): void;
}

/**
 * Resources per lease as counted by this daemon, so that adding one does not list them all, and
 * so that parallel adds cannot overrun the cap between them: the check and the reservation of a
 * place happen in one turn per lease (a listing, when one is needed, inside that turn), while the
 * writes themselves go on in parallel. A count includes the places reserved for writes still on
 * their way, and errs high (re-adds, writes a listing saw as well), never low; other daemons'
 * adds it misses, and a recount at the cap finds them.
 */
export class ResourceCounts {
  private readonly counts = new LRUCache<string, { n: number }>(countBound(10_000));
  /** Writes under way per lease; an entry lives as long as one of its adds. */
  private readonly writing = new Map<string, number>();
  /** The tail of each lease's turns; an entry lives as long as an add waits or runs. */
  private readonly turns = new Map<string, Promise<unknown>>();

  constructor(private readonly limit: number) {}

  /**
   * A place for one more resource of the lease `key`, or undefined when it holds `limit` already.
   * `list` counts what the bucket holds (it may stop past the limit).
   */
  reserve(key: string, list: () => Promise<number>): Promise<Reservation | undefined> {
    return this.inTurn(key, async () => {
      let count = this.counts.get(key) ?? (await this.recount(key, list));
      // the count here includes re-adds and misses other daemons' adds: count for real
      if (count.n >= this.limit) count = await this.recount(key, list);
      if (count.n >= this.limit) return undefined;
      count.n++;
      this.writing.set(key, (this.writing.get(key) ?? 0) + 1);
      let settled = false;
      const settle = (stored: boolean) => {
        if (settled) return;
        settled = true;
        const left = (this.writing.get(key) ?? 1) - 1;
        if (left > 0) this.writing.set(key, left);
        else this.writing.delete(key);
        // the count now cached, whether this one or a recount's, holds this place
        const current = this.counts.get(key);
        if (!stored && current) current.n = Math.max(0, current.n - 1);
      };
      return { written: () => settle(true), failed: () => settle(false) };
    });
  }

  /** Forgets the lease's count, after resources went. */
  forget(key: string): void {
    this.counts.delete(key);
  }

  private async recount(key: string, list: () => Promise<number>): Promise<{ n: number }> {
    // writes under way now may land before or after the listing passes them: count them anyway
    const underWay = this.writing.get(key) ?? 0;
    const count = { n: (await list()) + underWay };
    this.counts.set(key, count);
    return count;
  }

  private async inTurn<T>(key: string, run: () => Promise<T>): Promise<T> {
    const previous = this.turns.get(key) ?? Promise.resolve();
    const mine = previous.then(run, run);
    const tail = mine.catch(() => undefined);
    this.turns.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.turns.get(key) === tail) this.turns.delete(key);
    }
  }
}
