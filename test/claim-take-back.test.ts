import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FsBlobStore } from '../src/blobstore/fs.js';
import { Claims, type ClaimRequest } from '../src/content/claims.js';
import { Memberships } from '../src/content/memberships.js';
import { digestOf } from '../src/digest.js';
import { Documents } from '../src/metadata/documents.js';
import { ReclaimGuard } from '../src/metadata/reclaim-guard.js';
import { ReclaimMarks } from '../src/metadata/reclaim-marks.js';
import { randomBlob } from './support/harness.js';

/**
 * Two COMMITs of one blob in one namespace write the same hold. One whose bytes fail takes back
 * the hold it wrote, but never while the other is still storing the bytes under it: that one
 * would answer OK with nothing holding its blob.
 */
describe('a failed commit taking back its hold', () => {
  let root: string;
  let store: FsBlobStore;
  let memberships: Memberships;
  let claims: Claims;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 's3cs-claim-take-back-'));
    store = new FsBlobStore(root);
    await store.init();
    const docs = new Documents(store);
    memberships = new Memberships(docs);
    claims = new Claims(store, memberships, new ReclaimGuard(new ReclaimMarks(docs), store));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A commit of `data` whose bytes land once `landing` resolves, or fail as it rejects. */
  const commitOf = (ns: string, data: Buffer, landing: () => Promise<void>): Promise<unknown> => {
    const digest = digestOf(data);
    const request: ClaimRequest = {
      size: data.length,
      labels: {},
      absent: true,
      prepare: async () => undefined,
      store: async () => {
        await landing();
        const upload = store.createUpload({ target: digest, sizeHint: data.length });
        await upload.write(data);
        await upload.commit(digest, data.length);
      },
      alongside: async () => undefined,
    };
    return claims.commit(ns, digest, request);
  };

  it('keeps the hold of a commit whose bytes are still on their way', async () => {
    const data = randomBlob(2048);
    const digest = digestOf(data);
    let land!: () => void;
    const landed = new Promise<void>((resolve) => (land = resolve));
    const slow = commitOf('shared', data, () => landed);
    const failed = commitOf('shared', data, () => Promise.reject(new Error('the client left')));
    await expect(failed).rejects.toThrow('the client left');
    land();
    await expect(slow).resolves.toBe('stored');
    expect(await memberships.read('shared', digest, { fresh: true })).toMatchObject({ size: 2048 });
  });

  it('takes back the hold when no other commit of the blob is under way', async () => {
    const data = randomBlob(2049);
    const digest = digestOf(data);
    await expect(commitOf('alone', data, () => Promise.reject(new Error('PUT failed')))).rejects.toThrow('PUT failed');
    expect(await memberships.read('alone', digest, { fresh: true })).toBeUndefined();
  });

  it('takes back the hold once both of two commits whose bytes failed together have ended', async () => {
    const data = randomBlob(2051);
    const digest = digestOf(data);
    let fail!: (err: Error) => void;
    const failing = new Promise<void>((_, reject) => (fail = reject));
    failing.catch(() => undefined);
    const both = [commitOf('both', data, () => failing), commitOf('both', data, () => failing)];
    // both fail together: the second may reject while the first is still awaited below
    for (const commit of both) commit.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // S3 away for both at once: each sees the other under way when it would take the hold back
    fail(new Error('S3 is away'));
    for (const commit of both) await expect(commit).rejects.toThrow('S3 is away');
    await vi.waitFor(async () => expect(await memberships.read('both', digest, { fresh: true })).toBeUndefined(), { timeout: 10_000 });
  });

  it('lets a commit that starts while a hold is taken back write its own after the removal', async () => {
    const data = randomBlob(2050);
    const digest = digestOf(data);
    const failed = commitOf('after', data, () => Promise.reject(new Error('PUT failed')));
    // starts once the failed one is taking its hold back: its hold must not be the one removed
    await new Promise((resolve) => setImmediate(resolve));
    const next = commitOf('after', data, () => Promise.resolve());
    await expect(failed).rejects.toThrow('PUT failed');
    await expect(next).resolves.toBe('stored');
    expect(await memberships.read('after', digest, { fresh: true })).toMatchObject({ size: 2050 });
  });
});
