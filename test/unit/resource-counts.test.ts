import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { ResourceCounts } from '../../src/leases/resource-counts.js';

const key = 'ns\0lease-1';

describe('ResourceCounts (a lease\'s cap on resources)', () => {
  it('lists a full lease once for a burst of adds, not once an add', async () => {
    const counts = new ResourceCounts(3);
    let listings = 0;
    const list = async () => {
      listings++;
      return 3;
    };
    const places = await Promise.all(Array.from({ length: 20 }, () => counts.reserve(key, list)));
    expect(places.every((p) => p === undefined)).toBe(true);
    expect(listings).toBe(1);
  });

  it('takes the lease to its cap and no further, however many adds come at once', async () => {
    const counts = new ResourceCounts(5);
    const places = await Promise.all(Array.from({ length: 12 }, () => counts.reserve(key, async () => 0)));
    expect(places.filter((p) => p !== undefined)).toHaveLength(5);
  });

  it('refuses adds past its queue for one lease with ResourceExhausted naming the lease, while a listing hangs', async () => {
    const counts = new ResourceCounts(100, 4);
    let finish!: (n: number) => void;
    const hanging = new Promise<number>((resolve) => (finish = resolve));
    const adds = Array.from({ length: 10 }, () =>
      counts.reserve(key, () => hanging).then(
        (p) => (p ? 'reserved' : 'full'),
        (e: unknown) => e,
      ),
    );
    finish(0);
    const outcomes = await Promise.all(adds);
    expect(outcomes.filter((o) => o === 'reserved')).toHaveLength(4);
    const refused = outcomes.filter((o) => o !== 'reserved');
    expect(refused).toHaveLength(6);
    for (const err of refused) {
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect((err as Error).message).toContain('lease "lease-1"');
    }
  });
});
