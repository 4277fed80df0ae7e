import { afterEach, describe, expect, it } from 'vitest';
import type { OpenRead } from '../../src/blobstore/s3/open-read.js';
import { ParkedReads } from '../../src/blobstore/s3/parked-reads.js';

/** A response as ParkedReads sees it, opened `ago` ms before now. */
function response(digest: string, position: number, ago = 0) {
  return {
    digest,
    position,
    openedAt: performance.now() - ago,
    failed: false,
    closed: false,
    continuedBy: 0,
    close() {
      this.closed = true;
    },
    readAhead() {},
    continued() {
      this.continuedBy++;
    },
  };
}

/**
 * A response continued Read after Read serves the blob as S3 had it when the response was
 * opened: not continued past S3's word's age, nor parked again after this daemon deleted it.
 */
describe('parked GET responses', () => {
  const all: ParkedReads[] = [];
  const parked = (wordMs: number) => {
    const p = new ParkedReads(64, 10_000, wordMs);
    all.push(p);
    return p;
  };
  afterEach(() => all.splice(0).forEach((p) => p.closeAll()));

  it('are continued while S3\'s word on them is young, and closed once it is older', () => {
    const reads = parked(30_000);
    const young = response('sha256:a', 100, 1_000);
    reads.park(young as unknown as OpenRead);
    expect(reads.take('sha256:a', 100)).toBe(young);
    // the Read that takes it continues a sequential reader: it reads further ahead from now
    expect(young.continuedBy).toBe(1);
    const old = response('sha256:a', 200, 31_000);
    reads.park(old as unknown as OpenRead);
    expect(reads.take('sha256:a', 200)).toBeUndefined();
    expect(old.closed).toBe(true);
  });

  it('are not parked again once this daemon deleted their blob, unless opened after the delete', () => {
    const reads = parked(30_000);
    const before = response('sha256:b', 100, 5);
    reads.drop('sha256:b');
    // a Read that was under way on it when the delete went out ends, and would park it
    reads.park(before as unknown as OpenRead);
    expect(before.closed).toBe(true);
    expect(reads.take('sha256:b', 100)).toBeUndefined();
    const after = response('sha256:b', 100, -1);
    reads.park(after as unknown as OpenRead);
    expect(reads.take('sha256:b', 100)).toBe(after);
  });
});
