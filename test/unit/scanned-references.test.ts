import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ScannedReferences } from '../../src/gc/references.js';
import type { Roots, RootSources } from '../../src/gc/roots.js';

// the scan itself is another test's (reclaim): here only when one is started, and who shares it
const scans = vi.hoisted(() => ({ started: [] as { resolve: (digests: Set<string>) => void; reject: (err: Error) => void }[] }));
vi.mock('../../src/gc/roots.js', () => ({
  scanRoots: () =>
    new Promise<Pick<Roots, 'digests'>>((resolve, reject) =>
      scans.started.push({ resolve: (digests) => resolve({ digests }), reject }),
    ),
}));

/** No namespace holds anything: every answer comes from the scan of records and leases. */
const sources = { memberships: { heldElsewhere: async () => false } } as unknown as RootSources;
const D = `sha256:${'d'.repeat(64)}`;
const settled = () => new Promise((r) => setImmediate(r));

describe('ScannedReferences: the scan of records and leases', () => {
  beforeEach(() => {
    scans.started.length = 0;
    vi.useFakeTimers({ toFake: ['Date', 'performance'] });
  });
  afterEach(() => vi.useRealTimers());

  it('is shared by every call while it runs, however long it takes, and for 30 s after it finished', async () => {
    const refs = new ScannedReferences(sources);
    const first = refs.neededOutside('a', D);
    await settled();
    expect(scans.started).toHaveLength(1);

    // a slow scan: calls long past its start wait for it rather than start another beside it
    vi.advanceTimersByTime(45_000);
    const during = refs.neededOutside('b', D);
    vi.advanceTimersByTime(45_000);
    const later = refs.neededOutside('c', D);
    await settled();
    expect(scans.started).toHaveLength(1);

    scans.started[0]!.resolve(new Set([D]));
    expect(await Promise.all([first, during, later])).toEqual([true, true, true]);

    // 90 s after it began, but only 29 s after it finished: it still answers
    vi.advanceTimersByTime(29_000);
    expect(await refs.neededOutside('a', D)).toBe(true);
    expect(scans.started).toHaveLength(1);

    vi.advanceTimersByTime(2_000);
    const next = refs.neededOutside('a', D);
    await settled();
    expect(scans.started).toHaveLength(2);
    scans.started[1]!.resolve(new Set());
    expect(await next).toBe(false);
  });

  it('starts again at the next call after a scan failed', async () => {
    const refs = new ScannedReferences(sources);
    const failing = refs.neededOutside('a', D);
    await settled();
    scans.started[0]!.reject(new Error('listing failed'));
    await expect(failing).rejects.toThrow('listing failed');

    const again = refs.neededOutside('a', D);
    await settled();
    expect(scans.started).toHaveLength(2);
    scans.started[1]!.resolve(new Set([D]));
    expect(await again).toBe(true);
    expect(await refs.neededOutside('b', D)).toBe(true);
    expect(scans.started).toHaveLength(2);
  });
});
