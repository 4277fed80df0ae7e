import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { OpenRead, ReadAheadBudget } from '../../src/blobstore/s3/open-read.js';

const KiB = 1024;

async function drain(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of source) pieces.push(piece);
  return Buffer.concat(pieces);
}

/** A response body that delivers `data` in 16 KiB pieces and then stalls, as a slow S3 does. */
function stallingBody(data: Buffer): Readable {
  let at = 0;
  return new Readable({
    read() {
      if (at >= data.length) return; // no more bytes, and no end: the next read waits forever
      this.push(data.subarray(at, at + 16 * KiB));
      at += 16 * KiB;
    },
  });
}

describe('a GET response read Read by Read', () => {
  it('serves a Read from the bytes read ahead while the read-ahead still waits for S3', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const read = new OpenRead('sha256:x', 0, stallingBody(data), new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB));
    const first = await drain(read.take(32 * KiB, () => undefined));
    expect(first.equals(data.subarray(0, 32 * KiB))).toBe(true);
    // parked: reads on ahead until the body stalls, which it never stops waiting for
    read.readAhead();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = drain(read.take(32 * KiB, () => undefined));
    const served = await Promise.race([next, new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2_000))]);
    expect(served).not.toBe('waited');
    expect((served as Buffer).equals(data.subarray(32 * KiB, 64 * KiB))).toBe(true);
    read.close();
  });
});
