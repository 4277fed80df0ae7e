import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PieceBudget, PieceFailed, readPieces, SMALL_PIECE, WHOLE_PIECE, type ReadAt } from '../../src/blobstore/disk-pieces.js';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { digestOf } from '../../src/digest.js';
import { isStoreError } from '../../src/errors.js';
import { tempDir } from '../support/harness.js';

const MiB = 1024 * 1024;
/** Descriptors this process holds open (Linux). */
const openFiles = () => readdirSync('/proc/self/fd').length;
const readFrom = (data: Buffer): ReadAt => async (position, length) => {
  if (position + length > data.length) throw new Error(`past the end at ${position}`);
  return Buffer.from(data.subarray(position, position + length));
};

describe('a read of a file in pieces under a byte budget', () => {
  it('yields exactly the range asked for, in whole pieces while the budget has room, and gives every byte back at the end', async () => {
    const data = randomBytes(3 * MiB + 100);
    const budget = new PieceBudget(32 * MiB);
    const sizes: number[] = [];
    const got: Buffer[] = [];
    for await (const piece of readPieces(readFrom(data), 50, data.length - 60, budget)) {
      sizes.push(piece.length);
      got.push(piece);
    }
    expect(Buffer.concat(got).equals(data.subarray(50, data.length - 10))).toBe(true);
    expect(sizes).toEqual([WHOLE_PIECE, WHOLE_PIECE, WHOLE_PIECE, 40]);
    expect(budget.used).toBe(0);
  });

  it('counts what a reader that stopped asking holds, the piece it has and the one read ahead, until it lets go', async () => {
    const budget = new PieceBudget(32 * MiB);
    const reading = readPieces(readFrom(randomBytes(8 * MiB)), 0, 8 * MiB, budget);
    await reading.next();
    expect(budget.used).toBe(2 * WHOLE_PIECE);
    await reading.return(undefined);
    expect(budget.used).toBe(0);
  });

  it('goes on in small pieces once the budget is spent, rather than waiting, and still yields every byte', async () => {
    const data = randomBytes(2 * MiB);
    const budget = new PieceBudget(3 * MiB);
    const stalled = readPieces(readFrom(data), 0, data.length, budget);
    await stalled.next();
    const got: Buffer[] = [];
    for await (const piece of readPieces(readFrom(data), 0, data.length, budget)) {
      expect(piece.length).toBeLessThanOrEqual(WHOLE_PIECE);
      got.push(piece);
    }
    expect(got[0]!.length).toBe(WHOLE_PIECE);
    expect(got.some((p) => p.length === SMALL_PIECE)).toBe(true);
    expect(Buffer.concat(got).equals(data)).toBe(true);
    expect(budget.used).toBe(2 * WHOLE_PIECE);
    await stalled.return(undefined);
    expect(budget.used).toBe(0);
  });

  it('says where the bytes stopped when a piece cannot be read, and gives its count back', async () => {
    const data = randomBytes(2 * MiB + 5);
    const budget = new PieceBudget(32 * MiB);
    const failing: ReadAt = (position, length) => (position >= WHOLE_PIECE ? Promise.reject(new Error('EIO')) : readFrom(data)(position, length));
    const got: Buffer[] = [];
    const err = await (async () => {
      for await (const piece of readPieces(failing, 0, data.length, budget)) got.push(piece);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PieceFailed);
    expect((err as PieceFailed).position).toBe(WHOLE_PIECE);
    expect(String((err as PieceFailed).cause)).toContain('EIO');
    expect(Buffer.concat(got).equals(data.subarray(0, WHOLE_PIECE))).toBe(true);
    expect(budget.used).toBe(0);
  });
});

/** A local directory store holding a blob of `size` random bytes, unless `stored` is false. */
async function storeWith(size: number, stored = true): Promise<{ store: FsBlobStore; root: string; data: Buffer; digest: string }> {
  const root = tempDir('s3cs-pieces-');
  const store = new FsBlobStore(root);
  await store.init();
  const data = randomBytes(size);
  const digest = digestOf(data);
  if (stored) writeFileSync(join(root, 'blobs', digest), data);
  return { store, root, data, digest };
}

describe('Reads of a local directory store', () => {
  it('hold no more than the store-wide budget of pieces, the late ones in small pieces, and each still reads every byte', async () => {
    const { store, data, digest } = await storeWith(4 * MiB);
    const readers: AsyncIterator<Buffer>[] = [];
    const first: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const reader = (await store.readBlob(digest, 0, data.length))[Symbol.asyncIterator]();
      readers.push(reader);
      first.push((await reader.next()).value as Buffer);
    }
    const { inUse, limit } = store.usage().readAhead;
    // each reader holds its first piece and one read ahead: 40 of 1 MiB each were 80 MiB
    expect(limit).toBe(32 * MiB);
    expect(inUse).toBeLessThanOrEqual(limit + 40 * 2 * SMALL_PIECE);
    expect(first.reduce((n, p) => n + p.length, 0)).toBeLessThanOrEqual(limit / 2 + 40 * SMALL_PIECE);
    for (const [i, reader] of readers.entries()) {
      const rest: Buffer[] = [first[i]!];
      for (let r = await reader.next(); !r.done; r = await reader.next()) rest.push(r.value);
      expect(Buffer.concat(rest).equals(data)).toBe(true);
    }
    expect(store.usage().readAhead.inUse).toBe(0);
  });

  it('closes its file however a Read ends: read to the end, left early, never started, or failed', async () => {
    const { store, root, data, digest } = await storeWith(3 * MiB);
    const before = openFiles();
    for await (const _ of await store.readBlob(digest, 0, data.length));
    expect(openFiles()).toBe(before);
    const left = (await store.readBlob(digest, 0, data.length))[Symbol.asyncIterator]();
    await left.next();
    expect(openFiles()).toBe(before + 1);
    await left.return!(undefined);
    expect(openFiles()).toBe(before);
    const neverStarted = (await store.readBlob(digest, 0, data.length))[Symbol.asyncIterator]();
    await neverStarted.return!(undefined);
    expect(openFiles()).toBe(before);
    writeFileSync(join(root, 'blobs', digest), data.subarray(0, MiB));
    await expect((async () => {
      for await (const _ of await store.readBlob(digest, 0, data.length));
    })()).rejects.toThrow('ended at');
    expect(openFiles()).toBe(before);
    expect(store.usage().readAhead.inUse).toBe(0);
  });

  it('answers NotFound for a blob gone since its stat, and a clear error for a file cut short', async () => {
    const { store, root, data, digest } = await storeWith(3 * MiB, false);
    const drain = async () => {
      for await (const _ of await store.readBlob(digest, 0, data.length));
    };
    const gone = await drain().catch((err: unknown) => err);
    expect(isStoreError(gone, 'not-found')).toBe(true);
    expect(String(gone)).toContain(`content ${digest}: not found`);
    writeFileSync(join(root, 'blobs', digest), data.subarray(0, 2 * MiB));
    const cut = await drain().catch((err: unknown) => err);
    expect(isStoreError(cut, 'unavailable')).toBe(true);
    expect(String(cut)).toContain(`ended at ${2 * MiB}, expected ${3 * MiB}`);
    expect(store.usage().readAhead.inUse).toBe(0);
  });
});
