import { describe, expect, it } from 'vitest';
import { digestOf, parseDigest } from '../../src/digest.js';
import { isStoreError } from '../../src/errors.js';

const hex64 = 'a'.repeat(64);

describe('parseDigest', () => {
  it('accepts sha256, sha384 and sha512 digests in lower-case hex of the right length', () => {
    expect(parseDigest(`sha256:${hex64}`)).toEqual({ algorithm: 'sha256', hex: hex64, value: `sha256:${hex64}` });
    expect(parseDigest(`sha384:${'b'.repeat(96)}`).algorithm).toBe('sha384');
    expect(parseDigest(`sha512:${'c'.repeat(128)}`).algorithm).toBe('sha512');
  });

  it.each([
    ['', 'digest is empty'],
    ['sha256:', 'needs 64'],
    [`sha256:${'a'.repeat(63)}`, 'needs 64'],
    [`sha256:${'A'.repeat(64)}`, 'lower-case'],
    [`md5:${'a'.repeat(32)}`, 'unsupported algorithm'],
    ['sha256:../../x', 'needs 64'],
    [hex64, 'expected <algorithm>:<hex>'],
    [`:${hex64}`, 'expected <algorithm>:<hex>'],
  ])('refuses %j with InvalidArgument (%s)', (input, message) => {
    let caught: unknown;
    try {
      parseDigest(input);
    } catch (err) {
      caught = err;
    }
    expect(isStoreError(caught, 'invalid-argument')).toBe(true);
    expect((caught as Error).message).toContain(message);
  });
});

describe('digestOf', () => {
  it('hashes with sha256 by default', () => {
    expect(digestOf('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
