import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { OpenRead, ReadAheadBudget } from '../../src/blobstore/s3/open-read.js';
import { isStoreError, StoreError } from '../../src/errors.js';

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

const brokeOff = (err: unknown) => new StoreError('unavailable', `GET blobs/x: the response broke off: ${(err as Error).message}`);

/** A response body that delivers `first`, then fails as a connection reset does. */
function resetBody(first: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
      } else this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    },
  });
}

describe('a GET response read Read by Read', () => {
  it('serves a Read from the bytes read ahead while the read-ahead still waits for S3', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const read = new OpenRead('sha256:x', 0, stallingBody(data), new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB), brokeOff);
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

  it('fails a Read whose response breaks off with the store\'s error for it, not the socket\'s', async () => {
    const read = new OpenRead('sha256:x', 0, resetBody(Buffer.alloc(16 * KiB, 1)), new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB), brokeOff);
    const err = await drain(read.take(64 * KiB, () => undefined)).catch((e: unknown) => e);
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toBe('GET blobs/x: the response broke off: aborted');
  });

  it('fails the next Read the same way when the response broke off while parked', async () => {
    const budget = new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB);
    const read = new OpenRead('sha256:x', 0, resetBody(Buffer.alloc(16 * KiB, 1)), budget, brokeOff);
    await drain(read.take(16 * KiB, () => undefined));
    read.readAhead();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(read.failed).toBe(true);
    const err = await drain(read.take(16 * KiB, () => undefined)).catch((e: unknown) => e);
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect(budget.used).toBe(0);
  });
});
