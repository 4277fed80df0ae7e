import { LRUCache } from 'lru-cache';
import { KeyedTurns } from '../keyed-turns.js';
import { countBound } from '../lru.js';

/**
 * Calls waiting for one lease's turn at most (adds, for the most part), and how long each waits:
 * a pull or an export adds its layers under one lease a few at a time, and an add's turn is short
 * unless it recounts.
 */
const MAX_QUEUED = 256;
const TURN_WAITS_MS = 60_000;
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
 * Each lease's turns, and its resources as counted by this daemon. Create, Delete and the changes
 * of its resources take the lease's turn, one after another: two Creates of one id would both find
 * it free, and a Create and an add of the id made again while a Delete lists the old lease's
 * resources would have that add's resource removed with them. The count is there so that adding
 * one does not list them all, and so that parallel adds cannot overrun the cap between them: an
 * add checks and reserves its place in the turn (a listing, when one is needed, inside it), while
 * the writes themselves go on in parallel; a Delete waits for those under way. A count includes
 * the places reserved for writes still on their way, and errs high (re-adds, writes a listing saw
 * as well), never low; other daemons' adds it misses, and a recount at the cap finds them.
 */
export class ResourceCounts {
  private readonly counts = new LRUCache<string, Count>(countBound(10_000));
  /** Writes under way per lease, each settled once its write ended; an entry lives as long as one of them. */
  private readonly writing = new Map<string, Set<Promise<void>>>();
  /** A lease with no call waiting or running takes no memory. */
  private readonly turns: KeyedTurns;

  constructor(
    private readonly limit: number,
    maxQueued = MAX_QUEUED,
  ) {
    this.turns = new KeyedTurns(maxQueued, TURN_WAITS_MS);
  }

  /** Runs `work` in the lease `key`'s turn. `signal`: the caller went away; one still waiting gives its place up. */
  turn<T>(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.turns.run(key, `lease ${JSON.stringify(key.slice(key.indexOf('\0') + 1))}`, work, signal);
  }

  /**
   * In the lease's turn: a place for one more resource of the lease `key`, or undefined when it
   * holds `limit` already. `list` counts what the bucket holds (it may stop past the limit).
   */
  async take(key: string, list: () => Promise<number>): Promise<Reservation | undefined> {
    let count = this.counts.get(key) ?? (await this.recount(key, list));
    // the count here includes re-adds and misses other daemons' adds: count for real, unless
    // a recount found it full moments ago
    if (count.n >= this.limit && !(count.fullAt !== undefined && performance.now() - count.fullAt < FULL_STANDS_MS)) count = await this.recount(key, list);
    if (count.n >= this.limit) return undefined;
    count.n++;
    let ended!: () => void;
    const write = new Promise<void>((resolve) => (ended = resolve));
    const writes = this.writing.get(key) ?? new Set();
    writes.add(write);
    this.writing.set(key, writes);
    let settled = false;
    const settle = (stored: boolean) => {
      if (settled) return;
      settled = true;
      writes.delete(write);
      if (writes.size === 0 && this.writing.get(key) === writes) this.writing.delete(key);
      ended();
      // the count now cached, whether this one or a recount's, holds this place
      const current = this.counts.get(key);
      if (!stored && current) current.n = Math.max(0, current.n - 1);
    };
    return { written: () => settle(true), failed: () => settle(false) };
  }

  /** Once the writes of the lease `key` under way now have ended (in its turn: no more start meanwhile). */
  async writesEnded(key: string): Promise<void> {
    await Promise.all([...(this.writing.get(key) ?? [])]);
  }

  /** Forgets the lease's count, after resources went. */
  forget(key: string): void {
    this.counts.delete(key);
  }

  private async recount(key: string, list: () => Promise<number>): Promise<Count> {
    // writes under way now may land before or after the listing passes them: count them anyway
    const underWay = this.writing.get(key)?.size ?? 0;
    const n = (await list()) + underWay;
    // only a count that found the lease full stands: one that reaches the cap by re-adds is asked again
    const count: Count = n >= this.limit ? { n, fullAt: performance.now() } : { n };
    this.counts.set(key, count);
    return count;
  }
}
