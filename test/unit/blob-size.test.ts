import { describe, expect, it } from 'vitest';
import { BlobSize } from '../../src/blobstore/s3/blob-size.js';
import { isStoreError } from '../../src/errors.js';

const MiB = 1024 * 1024;

describe('an upload\'s blob size', () => {
  it('ends the part being filled where the declared size ends, and takes whole parts past it or with none declared', () => {
    const declared = new BlobSize(8 * MiB, 10 * MiB);
    expect(declared.partEnd(0, 0)).toBe(8 * MiB);
    expect(declared.partEnd(0, 8 * MiB)).toBe(2 * MiB);
    expect(declared.partEnd(MiB, 9 * MiB)).toBe(2 * MiB);
    // the client sent more than it declared
    expect(declared.partEnd(0, 11 * MiB)).toBe(8 * MiB);
    expect(new BlobSize(8 * MiB, 0).partEnd(100, 100)).toBe(8 * MiB);
  });

  it('refuses with InvalidArgument a declared size or bytes past what 10,000 parts hold', () => {
    const declaredTooLarge = (() => {
      try {
        return new BlobSize(MiB, 10_000 * MiB + 1);
      } catch (err) {
        return err;
      }
    })();
    expect(isStoreError(declaredTooLarge, 'invalid-argument')).toBe(true);
    const size = new BlobSize(MiB, 0);
    expect(() => size.check(10_000 * MiB - 1, 1)).not.toThrow();
    expect(() => size.check(10_000 * MiB - 1, 2)).toThrow(/10,000 parts of 1048576 bytes/);
  });
});
