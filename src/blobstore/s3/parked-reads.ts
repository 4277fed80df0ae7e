import { LRUCache } from 'lru-cache';
import type { OpenRead } from './open-read.js';

/**
 * GET responses left open after a Read that stopped short of the end, so that the next Read at
 * that offset continues on them. Bounded in number; an unclaimed one is closed after a while.
 */
export class ParkedReads {
  private readonly parked: LRUCache<string, OpenRead>;

  constructor(max: number, idleMs: number) {
    this.parked = new LRUCache<string, OpenRead>({
      max,
      ttl: idleMs,
      // closes idle responses on time, not at the next access; lru-cache unrefs these timers
      ttlAutopurge: true,
      // A Read taking its response back deletes the entry and keeps the response open; one
      // pushed out, left unclaimed or replaced is closed.
      dispose: (read, _key, reason) => {
        if (reason !== 'delete') read.close();
      },
    });
  }

  take(digest: string, position: number): OpenRead | undefined {
    const key = `${digest}@${position}`;
    const read = this.parked.get(key);
    if (!read) return undefined;
    this.parked.delete(key);
    // a response that broke while parked is no use: the Read opens a new one
    if (read.failed) {
      read.close();
      return undefined;
    }
    return read;
  }

  park(read: OpenRead): void {
    this.parked.set(`${read.digest}@${read.position}`, read);
    read.readAhead();
  }

  drop(digest: string): void {
    for (const [key, read] of [...this.parked.entries()]) {
      if (read.digest !== digest) continue;
      this.parked.delete(key);
      read.close();
    }
  }

  closeAll(): void {
    // those past their time are closed by the purge, the rest here
    this.parked.purgeStale();
    for (const read of this.parked.values()) read.close();
    this.parked.clear();
  }
}
