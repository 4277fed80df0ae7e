// Blobs the cases write, and running work at a fixed concurrency.
import { createHash, randomBytes } from 'node:crypto';
import { MiB } from './config.mjs';

const base = randomBytes(64 * MiB);

/** A deterministic blob of `size` bytes, distinct per seed, produced in 1 MiB chunks without holding it whole. */
export function blob(seed, size) {
  const chunks = function* () {
    for (let off = 0; off < size; off += MiB) {
      const n = Math.min(MiB, size - off);
      const start = (off + seed * 4099) % (base.length - MiB);
      const chunk = Buffer.from(base.subarray(start, start + n));
      chunk.writeUInt32BE(seed, 0);
      chunk.writeUInt32BE(off / MiB, 4);
      yield chunk;
    }
  };
  const h = createHash('sha256');
  for (const c of chunks()) h.update(c);
  return { chunks, size, digest: `sha256:${h.digest('hex')}` };
}

export const sha256 = (data) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Runs fn(0..n-1) with at most `concurrency` at once. */
export async function pool(n, concurrency, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}
