import { describe, expect, it } from 'vitest';
import { spaceFor, TierIndex, type TierEntry } from '../../src/blobstore/tier/lru.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const entry = (digest: string, size: number): TierEntry => ({ digest, size, confirmedAt: 0, markedAt: 0 });
const digests = (index: TierIndex) => [...index.all()].map((e) => e.digest);

describe('the read tier index', () => {
  it('counts each blob in whole 4 KiB blocks, at least one', () => {
    expect(spaceFor(1)).toBe(4 * KiB);
    expect(spaceFor(4 * KiB)).toBe(4 * KiB);
    expect(spaceFor(4 * KiB + 1)).toBe(8 * KiB);
  });

  /** Three blobs of 4 KiB kept, filled one after the other, in a tier of 12 KiB. */
  function fullOfThree(): TierIndex {
    const index = new TierIndex(12 * KiB, 100);
    for (const d of ['a', 'b', 'c']) {
      expect(index.admit(4 * KiB)).toBe(true);
      expect(index.grow(0, 4 * KiB)).toEqual([]);
      index.add(entry(d, 4 * KiB), { written: 4 * KiB });
    }
    return index;
  }

  it('evicts the least recently used blobs as a fill\'s bytes need room, a use counting as recent', () => {
    const index = fullOfThree();
    index.use('a');
    expect(index.admit(8 * KiB)).toBe(true);
    expect(index.grow(0, 1).map((e) => e.digest)).toEqual(['b']);
    expect(index.grow(1, 4 * KiB)).toEqual([]);
    expect(index.grow(4 * KiB, 4 * KiB + 1).map((e) => e.digest)).toEqual(['c']);
    expect(digests(index)).toEqual(['a']);
    expect(index.onDisk).toBe(12 * KiB);
  });

  it('evicts nothing when a fill is admitted, only as its bytes arrive', () => {
    const index = fullOfThree();
    expect(index.admit(12 * KiB)).toBe(true);
    expect(digests(index)).toEqual(['a', 'b', 'c']);
  });

  it('costs the kept blobs no more than a given-up fill wrote', () => {
    const index = fullOfThree();
    expect(index.admit(12 * KiB)).toBe(true);
    expect(index.grow(0, 1).map((e) => e.digest)).toEqual(['a']);
    index.release(12 * KiB, 1);
    expect(digests(index)).toEqual(['b', 'c']);
    expect(index.onDisk).toBe(8 * KiB);
    // the space is free again for a blob of that size
    expect(index.admit(12 * KiB)).toBe(true);
  });

  it('never has more on disk than its size, kept blobs and fills under way together', () => {
    const index = fullOfThree();
    expect(index.admit(6 * KiB)).toBe(true);
    expect(index.admit(6 * KiB)).toBe(false);
    expect(index.admit(4 * KiB)).toBe(true);
    let [x, y] = [0, 0];
    for (let i = 0; i < 6; i++) {
      index.grow(x, x + KiB);
      x += KiB;
      if (y < 4 * KiB) index.grow(y, (y += KiB));
      expect(index.onDisk).toBeLessThanOrEqual(12 * KiB);
    }
    index.add(entry('x', 6 * KiB), { written: x });
    index.add(entry('y', 4 * KiB), { written: y });
    expect(digests(index)).toEqual(['x', 'y']);
    expect(index.onDisk).toBe(12 * KiB);
  });

  it('refuses a blob larger than the tier, evicting nothing', () => {
    const index = new TierIndex(8 * KiB, 100);
    index.add(entry('a', 4 * KiB));
    expect(index.admit(8 * KiB + 1)).toBe(false);
    expect(digests(index)).toEqual(['a']);
  });

  it('counts the sizes of fills under way against admitting another, and gives them back on release', () => {
    const index = new TierIndex(8 * KiB, 100);
    expect(index.admit(8 * KiB)).toBe(true);
    expect(index.admit(4 * KiB)).toBe(false);
    index.release(8 * KiB, 0);
    expect(index.admit(4 * KiB)).toBe(true);
  });

  it('keeps at most the number of entries it is given, the oldest going first', () => {
    const index = new TierIndex(1024 * KiB, 2);
    index.add(entry('a', 10));
    index.add(entry('b', 10));
    expect(index.add(entry('c', 10)).map((e) => e.digest)).toEqual(['a']);
    expect(digests(index)).toEqual(['b', 'c']);
  });

  it('refuses a blob found at start larger than the whole tier, keeping the blobs that fit', () => {
    const index = new TierIndex(4 * MiB, 100);
    expect(index.add(entry('a', MiB))).toEqual([]);
    expect(index.add(entry('b', 5 * MiB)).map((e) => e.digest)).toEqual(['b']);
    expect(index.add(entry('c', MiB))).toEqual([]);
    expect(digests(index)).toEqual(['a', 'c']);
    expect(index.bytes).toBe(2 * MiB);
  });

  it('evicts down to the size when blobs found at start exceed it (the size was lowered)', () => {
    const index = new TierIndex(8 * KiB, 100);
    const evicted = ['a', 'b', 'c'].flatMap((d) => index.add(entry(d, 4 * KiB)));
    expect(evicted.map((e) => e.digest)).toEqual(['a']);
    expect(index.bytes).toBe(8 * KiB);
  });
});
