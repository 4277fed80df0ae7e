import { describe, expect, it } from 'vitest';
import { spaceFor, TierIndex, type TierEntry } from '../../src/blobstore/tier/lru.js';

const KiB = 1024;
const entry = (digest: string, size: number): TierEntry => ({ digest, size, confirmedAt: 0, markedAt: 0 });
const digests = (index: TierIndex) => [...index.all()].map((e) => e.digest);

describe('the read tier index', () => {
  it('counts each blob in whole 4 KiB blocks, at least one', () => {
    expect(spaceFor(1)).toBe(4 * KiB);
    expect(spaceFor(4 * KiB)).toBe(4 * KiB);
    expect(spaceFor(4 * KiB + 1)).toBe(8 * KiB);
  });

  it('evicts the least recently used blobs a reservation needs room from, a use counting as recent', () => {
    const index = new TierIndex(12 * KiB, 100);
    for (const d of ['a', 'b', 'c']) {
      index.reserve(4 * KiB);
      index.add(entry(d, 4 * KiB), { reserved: true });
    }
    index.use('a');
    const evicted = index.reserve(8 * KiB);
    expect(evicted?.map((e) => e.digest)).toEqual(['b', 'c']);
    expect(digests(index)).toEqual(['a']);
    expect(index.bytes).toBe(4 * KiB);
  });

  it('refuses a blob larger than the tier, evicting nothing', () => {
    const index = new TierIndex(8 * KiB, 100);
    index.add(entry('a', 4 * KiB), { reserved: false });
    expect(index.reserve(8 * KiB + 1)).toBeUndefined();
    expect(digests(index)).toEqual(['a']);
  });

  it('counts reservations of fills under way against the size, and gives them back on release', () => {
    const index = new TierIndex(8 * KiB, 100);
    expect(index.reserve(8 * KiB)).toEqual([]);
    expect(index.reserve(4 * KiB)).toBeUndefined();
    index.release(8 * KiB);
    expect(index.reserve(4 * KiB)).toEqual([]);
  });

  it('keeps at most the number of entries it is given, the oldest going first', () => {
    const index = new TierIndex(1024 * KiB, 2);
    index.add(entry('a', 10), { reserved: false });
    index.add(entry('b', 10), { reserved: false });
    expect(index.add(entry('c', 10), { reserved: false }).map((e) => e.digest)).toEqual(['a']);
    expect(digests(index)).toEqual(['b', 'c']);
  });

  it('evicts down to the size when blobs found at start exceed it (the size was lowered)', () => {
    const index = new TierIndex(8 * KiB, 100);
    const evicted = ['a', 'b', 'c'].flatMap((d) => index.add(entry(d, 4 * KiB), { reserved: false }));
    expect(evicted.map((e) => e.digest)).toEqual(['a']);
    expect(index.bytes).toBe(8 * KiB);
  });
});
