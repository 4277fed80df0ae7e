import { StoreError } from '../errors.js';

/** The digests the daemon stores blobs under (digest.ts): sha256 as BuildKit writes, sha384 and sha512. */
const DIGEST = /sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}/g;
/** A digest cut by a chunk's end is found whole in the next: this much is carried over. */
const CARRY = 'sha512:'.length + 128 - 1;

/**
 * Every digest written anywhere in a record too large to decode (over 16 MiB, or another
 * tool's object under a shared manifests prefix), read as it streams. It finds a superset of the
 * layers BuildKit would import (diffIDs and other digests too), which is what the collector
 * needs: marking a digest that is no blob costs nothing, missing a layer would cost the layer.
 * Past `maxDigests` distinct digests it gives up (the set is memory), naming the record.
 */
export async function digestsIn(chunks: AsyncIterable<Buffer>, name: string, maxDigests = 1_000_000): Promise<Set<string>> {
  const found = new Set<string>();
  let carry = '';
  for await (const chunk of chunks) {
    // latin1: one character a byte, so a digest split across chunks lines up again
    const text = carry + chunk.toString('latin1');
    // a copy of each match: a slice would keep the whole chunk it was cut from alive
    for (const m of text.matchAll(DIGEST)) found.add(Buffer.from(m[0], 'latin1').toString('latin1'));
    if (found.size > maxDigests) {
      throw new StoreError('resource-exhausted', `cache record ${JSON.stringify(name)} names more than ${maxDigests} digests; too many to collect garbage beside it`);
    }
    carry = text.slice(-CARRY);
  }
  return found;
}
