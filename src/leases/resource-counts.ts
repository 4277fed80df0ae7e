import { LRUCache } from 'lru-cache';
import { KeyedTurns } from '../keyed-turns.js';
import { countBound } from '../lru.js';

/**
 * Adds waiting for one lease's turn at most, and how long each waits: a pull or an export adds
 * its layers under one lease a few at a time, and a turn is short unless it recounts.
 */
const MAX_QUEUED_ADDS = 256;
const ADD_WAITS_MS = 60_000;
/**
 * A recount that found the lease full stands this long: at the cap every add would otherwise
 * list the lease's resources again, one add after another, and a burst of them would queue
 * for minutes (and hold up COMMITs under the lease meanwhile).
 */
const FULL_STANDS_MS = 5_000;

/** A place taken for one resource; say how its write ended. */
export interface Reservation {
  written(): void;
  failed(): void;
}

interface Count {
  n: number;
  /** When a recount found the lease full (see FULL_STANDS_MS). */
  fullAt?: number;
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
  private readonly counts = new LRUCache<string, Count>(countBound(10_000));
  /** Writes under way per lease; an entry lives as long as one of its adds. */
  private readonly writing = new Map<string, number>();
  /** Each lease's turns; a lease with no add waiting or running takes no memory. */
  private readonly turns: KeyedTurns;

  constructor(
    private readonly limit: number,
    maxQueued = MAX_QUEUED_ADDS,
  ) {
    this.turns = new KeyedTurns(maxQueued, ADD_WAITS_MS);
  }

  /**
   * A place for one more resource of the lease `key`, or undefined when it holds `limit` already.
   * `list` counts what the bucket holds (it may stop past the limit).
   */
  reserve(key: string, list: () => Promise<number>, signal?: AbortSignal): Promise<Reservation | undefined> {
    return this.turns.run(key, `lease ${JSON.stringify(key.slice(key.indexOf('\0') + 1))}`, async () => {
      let count = this.counts.get(key) ?? (await this.recount(key, list));
      // the count here includes re-adds and misses other daemons' adds: count for real, unless
      // a recount found it full moments ago
      if (count.n >= this.limit && !(count.fullAt !== undefined && performance.now() - count.fullAt < FULL_STANDS_MS)) count = await this.recount(key, list);
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
    }, signal);
  }

  /** Forgets the lease's count, after resources went. */
  forget(key: string): void {
    this.counts.delete(key);
  }

  private async recount(key: string, list: () => Promise<number>): Promise<Count> {
    // writes under way now may land before or after the listing passes them: count them anyway
    const underWay = this.writing.get(key) ?? 0;
    const n = (await list()) + underWay;
    // only a count that found the lease full stands: one that reaches the cap by re-adds is asked again
    const count: Count = n >= this.limit ? { n, fullAt: performance.now() } : { n };
    this.counts.set(key, count);
    return count;
  }
}
