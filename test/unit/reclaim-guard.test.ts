import { describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/blobstore/types.js';
import { ReclaimGuard } from '../../src/metadata/reclaim-guard.js';
import type { ReclaimMark, ReclaimMarks } from '../../src/metadata/reclaim-marks.js';

const digest = `sha256:${'a'.repeat(64)}`;
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

/** The guard over one note, and a bucket that holds the blob or not (fresh stats counted). */
function guard(mark: ReclaimMark | undefined, stored: boolean, waitMs?: number) {
  const asked = { fresh: 0 };
  const marks = { read: async () => mark } as unknown as ReclaimMarks;
  const blobs = {
    statBlob: async (_d: string, options: { fresh?: boolean } = {}) => {
      if (options.fresh) asked.fresh++;
      return stored ? { size: 1, lastModified: new Date() } : undefined;
    },
  } as unknown as BlobStore;
  return { guard: new ReclaimGuard(marks, blobs, waitMs), asked };
}

describe('the writers\' side of the reclaim note', () => {
  it('trusts the bytes without asking the bucket when no collector began its last check', async () => {
    const { guard: g, asked } = guard({ since: ago(60_000) }, false);
    expect(await g.stays(digest)).toBe(true);
    expect(asked.fresh).toBe(0);
  });

  it('asks the bucket when a last check began and its outcome never came (a collector stopped mid-batch)', async () => {
    const gone = guard({ since: ago(3_600_000), finalAt: ago(120_000) }, false);
    expect(await gone.guard.stays(digest)).toBe(false);
    const there = guard({ since: ago(3_600_000), finalAt: ago(120_000) }, true);
    expect(await there.guard.stays(digest)).toBe(true);
    expect(there.asked.fresh).toBe(1);
  });

  it('waits for the outcome of a last check begun 20 s ago by a clock 20 s behind this one (a delete cut off may still land)', async () => {
    const { guard: g, asked } = guard({ since: ago(3_600_000), finalAt: ago(40_000) }, true, 300);
    const started = performance.now();
    expect(await g.stays(digest)).toBe(true);
    // the wait ended at its own bound, not at once, and then the bucket was asked
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    expect(asked.fresh).toBe(1);
  });

  it('stops waiting for a note whose last check a clock far ahead of this one began, once it waited its bound, and asks the bucket', async () => {
    const { guard: g, asked } = guard({ since: ago(3_600_000), finalAt: ago(-3_600_000) }, false, 300);
    expect(await g.stays(digest)).toBe(false);
    expect(asked.fresh).toBe(1);
  });

  it('asks the bucket when the note says the bytes were deleted: they may have been stored again', async () => {
    expect(await guard({ since: ago(3_600_000), finalAt: ago(20_000), deletedAt: ago(10_000) }, true).guard.stays(digest)).toBe(true);
    expect(await guard({ since: ago(3_600_000), finalAt: ago(20_000), deletedAt: ago(10_000) }, false).guard.stays(digest)).toBe(false);
  });
});
