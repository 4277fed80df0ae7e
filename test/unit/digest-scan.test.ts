import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { digestsIn } from '../../src/records/digest-scan.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

async function* pieces(text: string, size: number): AsyncIterable<Buffer> {
  for (let i = 0; i < text.length; i += size) yield Buffer.from(text.slice(i, i + size), 'latin1');
}

describe('digestsIn', () => {
  it('finds every sha256 digest of a record, wherever the chunks cut it', async () => {
    const text = `{"layers":[{"blob":"${d('a')}","annotations":{"containerd.io/uncompressed":"${d('b')}"}},{"blob":"${d('c')}"}]}`;
    for (const size of [1, 7, 70, 71, 1000]) {
      expect([...(await digestsIn(pieces(text, size), 'r'))].sort()).toEqual([d('a'), d('b'), d('c')]);
    }
  });

  it('finds sha384 and sha512 digests too, the other blobs the daemon stores, wherever the chunks cut them', async () => {
    const d384 = `sha384:${'d'.repeat(96)}`;
    const d512 = `sha512:${'e'.repeat(128)}`;
    const text = `{"layers":[{"blob":"${d512}"},{"blob":"${d384}"},{"blob":"${d('a')}"}]}`;
    for (const size of [1, 7, 134, 135, 1000]) {
      expect([...(await digestsIn(pieces(text, size), 'r'))].sort()).toEqual([d('a'), d384, d512]);
    }
  });

  it('finds nothing in bytes that name no digest, and no digest of the wrong length', async () => {
    expect((await digestsIn(pieces(`not json at all sha256:${'a'.repeat(63)}"`, 10), 'r')).size).toBe(0);
  });

  it('gives up with resource-exhausted naming the record past the most digests it keeps', async () => {
    const err = await digestsIn(pieces(`${d('a')} ${d('b')} ${d('c')}`, 50), 'huge', 2).catch((e: unknown) => e);
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    expect((err as Error).message).toContain('"huge" names more than 2 digests');
  });
});
