import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HashWorkers } from '../../src/content/hash-workers.js';

const workers = new HashWorkers(2);
const native = (algorithm: string, data: Buffer) => `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;

describe('hashes on worker threads', () => {
  for (const algorithm of ['sha256', 'sha384', 'sha512']) {
    it(`give the same ${algorithm} digest as Node's own hash, fed in uneven pieces`, async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const h = await workers.open(algorithm);
      for (let off = 0, n = 1; off < data.length; off += n, n = (n * 7 + 13) % 400_000) await h.update(data.subarray(off, off + n));
      expect(await h.digest()).toBe(native(algorithm, data));
      h.close();
    });
  }

  it('take pieces larger than the ring they are copied into, and many times its size in all', async () => {
    const data = randomBytes(13 * 1024 * 1024 + 5);
    const h = await workers.open('sha256');
    // one piece of 6 MiB (more than the 4 MiB ring), then pieces that end off its boundaries
    await h.update(data.subarray(0, 6 * 1024 * 1024));
    for (let off = 6 * 1024 * 1024; off < data.length; off += 1_000_003) await h.update(data.subarray(off, off + 1_000_003));
    expect(await h.digest()).toBe(native('sha256', data));
    h.close();
  });

  it('may be fed without waiting for each update, and keep the order of the bytes', async () => {
    const data = randomBytes(24 * 1024 * 1024);
    const h = await workers.open('sha256');
    const pieces = [];
    // pieces near the ring's size, so each waits for room more than once, half-copied
    for (let off = 0; off < data.length; off += 3_000_017) pieces.push(h.update(data.subarray(off, off + 3_000_017)));
    await Promise.all(pieces);
    expect(await h.digest()).toBe(native('sha256', data));
    h.close();
  });

  it('report the digest so far and keep going', async () => {
    const data = randomBytes(1000);
    const h = await workers.open('sha256');
    await h.update(data.subarray(0, 400));
    expect(await h.digest()).toBe(native('sha256', data.subarray(0, 400)));
    await h.update(data.subarray(400));
    expect(await h.digest()).toBe(native('sha256', data));
  });

  it('continue from a saved state, in another hash, to the digest of all the bytes', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const first = await workers.open('sha256');
    await first.update(data.subarray(0, 2 * 1024 * 1024));
    const state = await first.save();
    await first.update(randomBytes(100)); // what the first one does afterwards does not matter
    const second = await workers.open('sha256', state);
    await second.update(data.subarray(2 * 1024 * 1024));
    expect(await second.digest()).toBe(native('sha256', data));
  });

  it('refuse a state that is not one they saved', async () => {
    await expect(workers.open('sha256', randomBytes(116))).rejects.toThrow(/saved sha256 state cannot be continued/);
  });

  it('end their threads on close: a hash left open fails, and a later open starts new ones', async () => {
    const pool = new HashWorkers(1);
    const h = await pool.open('sha256');
    await pool.close();
    await expect(h.digest()).rejects.toThrow(/hash worker exited/);
    const again = await pool.open('sha256');
    await again.update(Buffer.from('abc'));
    expect(await again.digest()).toBe(native('sha256', Buffer.from('abc')));
    await pool.close();
  });

  it('refuse an unknown algorithm', async () => {
    await expect(workers.open('md5')).rejects.toThrow(/unsupported digest algorithm "md5"/);
  });
});

describe('the rings hashes are fed through', () => {
  it('are 4 MiB for the first 16 hashes open at once and 64 KiB past them, one given back as its hash closes', async () => {
    const pool = new HashWorkers(1);
    try {
      const open = await Promise.all(Array.from({ length: 18 }, () => pool.open('sha512')));
      expect(open.map((h) => h.ringBytes)).toEqual([...Array<number>(16).fill(4 * 1024 * 1024), 64 * 1024, 64 * 1024]);
      open[0]!.close();
      // closing twice gives back one ring, not two
      open[0]!.close();
      const [next, after] = [await pool.open('sha512'), await pool.open('sha512')];
      expect([next.ringBytes, after.ringBytes]).toEqual([4 * 1024 * 1024, 64 * 1024]);
      for (const h of [...open, next, after]) h.close();
    } finally {
      await pool.close();
    }
  });

  it('of 64 KiB give the same digest for pieces many times their size', async () => {
    const pool = new HashWorkers(1);
    try {
      const full = await Promise.all(Array.from({ length: 16 }, () => pool.open('sha512')));
      const h = await pool.open('sha512');
      expect(h.ringBytes).toBe(64 * 1024);
      const data = randomBytes(5 * 1024 * 1024 + 3);
      for (let off = 0; off < data.length; off += 1024 * 1024) await h.update(data.subarray(off, off + 1024 * 1024));
      expect(await h.digest()).toBe(native('sha512', data));
      for (const x of [...full, h]) x.close();
    } finally {
      await pool.close();
    }
  });
});
