import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { ResourceCounts } from '../../src/leases/resource-counts.js';

const key = 'ns\0lease-1';

/** An add's reservation, in the lease's turn as LeaseStore makes it. */
const reserve = (counts: ResourceCounts, list: () => Promise<number>, signal?: AbortSignal) => counts.turn(key, () => counts.take(key, list), signal);

describe('ResourceCounts (a lease\'s cap on resources)', () => {
  it('lists a full lease once for a burst of adds, not once an add', async () => {
    const counts = new ResourceCounts(3);
    let listings = 0;
    const list = async () => {
      listings++;
      return 3;
    };
    const places = await Promise.all(Array.from({ length: 20 }, () => reserve(counts, list)));
    expect(places.every((p) => p === undefined)).toBe(true);
    expect(listings).toBe(1);
  });

  it('takes the lease to its cap and no further, however many adds come at once', async () => {
    const counts = new ResourceCounts(5);
    const places = await Promise.all(Array.from({ length: 12 }, () => reserve(counts, async () => 0)));
    expect(places.filter((p) => p !== undefined)).toHaveLength(5);
  });

  it('refuses adds past its queue for one lease with ResourceExhausted naming the lease, while a listing hangs', async () => {
    const counts = new ResourceCounts(100, 4);
    let finish!: (n: number) => void;
    const hanging = new Promise<number>((resolve) => (finish = resolve));
    const settled: unknown[] = [];
    const adds = Array.from({ length: 10 }, () =>
      reserve(counts, () => hanging).then(
        (p) => settled.push(p ? 'reserved' : 'full'),
        (e: unknown) => settled.push(e),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    // the first is still listing: the three behind it wait, the other six were refused at once
    expect(settled).toHaveLength(6);
    for (const err of settled) {
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect((err as Error).message).toContain('lease "lease-1"');
    }
    finish(0);
    await Promise.all(adds);
    expect(settled.slice(6)).toEqual(['reserved', 'reserved', 'reserved', 'reserved']);
  });

  it('lets an add whose caller went away give its place in the queue up, cancelled', async () => {
    const counts = new ResourceCounts(100, 2);
    let finish!: (n: number) => void;
    const hanging = new Promise<number>((resolve) => (finish = resolve));
    const first = reserve(counts, () => hanging);
    const caller = new AbortController();
    const second = reserve(counts, () => hanging, caller.signal).then(
      () => 'reserved',
      (e: unknown) => e,
    );
    const refused = await reserve(counts, () => hanging).then(
      () => 'reserved',
      (e: unknown) => e,
    );
    expect(isStoreError(refused, 'resource-exhausted')).toBe(true);
    caller.abort();
    const gaveUp = await second;
    expect(isStoreError(gaveUp, 'cancelled')).toBe(true);
    // its place is free again
    const fourth = reserve(counts, () => hanging);
    finish(0);
    expect(await first).toBeDefined();
    expect(await fourth).toBeDefined();
  });

  it('counts again for a new resource where only re-adds took the lease to its cap', async () => {
    const counts = new ResourceCounts(3);
    let listings = 0;
    // the bucket holds two; the first add below is a re-add, which the count takes for a third
    const list = async () => (listings++, 2);
    const readd = await reserve(counts, list);
    expect(readd).toBeDefined();
    readd!.written();
    expect(await reserve(counts, list)).toBeDefined();
    expect(listings).toBe(2);
  });

  it('lets a call in the lease\'s turn wait for the writes of places given before it, until they end', async () => {
    const counts = new ResourceCounts(10);
    const place = await reserve(counts, async () => 0);
    let waited = false;
    const deleting = counts.turn(key, async () => {
      await counts.writesEnded(key);
      waited = true;
    });
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(waited).toBe(false);
    place!.failed();
    await deleting;
    expect(waited).toBe(true);
  });
});
