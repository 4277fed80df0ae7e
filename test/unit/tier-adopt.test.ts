import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { TierLayout } from '../../src/blobstore/tier/layout.js';
import { ReadTier } from '../../src/blobstore/tier/store.js';
import { digestOf } from '../../src/digest.js';
import { randomBlob, tempDir } from '../support/harness.js';

/**
 * A read tier removes and evicts files in its directory: it takes only a directory that is
 * empty or a tier's, never another store's given as --cache-dir by mistake.
 */
describe('the read tier directory it takes', () => {
  /** A local directory store (`serve` without a bucket) holding one blob, and the store itself. */
  async function localStoreWithBlob() {
    const root = tempDir('s3cs-tier-adopt-root-');
    const store = new FsBlobStore(root);
    await store.init();
    const data = randomBlob(4096);
    const digest = digestOf(data);
    const upload = store.createUpload({ target: digest, sizeHint: data.length });
    await upload.write(data);
    await upload.commit(digest, data.length);
    return { root, store, data, digest };
  }

  it('refuses the local directory store\'s root, and its blobs stay', async () => {
    const { root, store, data, digest } = await localStoreWithBlob();
    await expect(ReadTier.open(store, { dir: root, maxBytes: 1024 * 1024 })).rejects.toThrow(/which a read tier never writes.*directory of its own/);
    const stat = await store.statBlob(digest);
    expect(stat?.size).toBe(data.length);
    expect(existsSync(new TierLayout(root).marker)).toBe(false);
  });

  it('refuses containerd\'s content root, and its blobs stay', async () => {
    const { store } = await localStoreWithBlob();
    const dir = tempDir('s3cs-tier-adopt-containerd-');
    const layout = new TierLayout(dir);
    const digest = digestOf('a layer containerd keeps');
    mkdirSync(join(dir, 'ingest'), { recursive: true });
    mkdirSync(join(layout.blobs, 'sha256'), { recursive: true });
    writeFileSync(layout.blobPath(digest), 'a layer containerd keeps');
    await expect(ReadTier.open(store, { dir, maxBytes: 1024 * 1024 })).rejects.toThrow(/ingest\/.*containerd/);
    expect(readFileSync(layout.blobPath(digest), 'utf8')).toBe('a layer containerd keeps');
  });

  it('refuses a directory holding anything a tier never writes (a home directory, say), and removes nothing of it', async () => {
    const { store } = await localStoreWithBlob();
    const dir = tempDir('s3cs-tier-adopt-home-');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'tmp', 'notes.txt'), 'kept');
    writeFileSync(join(dir, '.profile'), 'kept');
    await expect(ReadTier.open(store, { dir, maxBytes: 1024 * 1024 })).rejects.toThrow(/holds \.profile, which a read tier never writes/);
    expect(readFileSync(join(dir, 'tmp', 'notes.txt'), 'utf8')).toBe('kept');
  });

  it('leaves alone a file another store wrote under its blobs/ since it was marked', async () => {
    const { store } = await localStoreWithBlob();
    const dir = tempDir('s3cs-tier-adopt-shared-');
    const layout = new TierLayout(dir);
    await (await ReadTier.open(store, { dir, maxBytes: 1024 * 1024 })).close();
    const theirs = join(layout.blobs, `sha256:${'a'.repeat(64)}`);
    writeFileSync(theirs, 'a blob of the local directory store');
    const tier = await ReadTier.open(store, { dir, maxBytes: 1024 * 1024 });
    await tier.close();
    expect(readFileSync(theirs, 'utf8')).toBe('a blob of the local directory store');
  });

  it('takes an empty directory and marks it as a read tier\'s', async () => {
    const { store } = await localStoreWithBlob();
    const dir = tempDir('s3cs-tier-adopt-empty-');
    const tier = await ReadTier.open(store, { dir, maxBytes: 1024 * 1024 });
    await tier.close();
    expect(existsSync(new TierLayout(dir).marker)).toBe(true);
  });

  it('takes a tier\'s directory from before the mark, with the blobs it kept', async () => {
    const { store } = await localStoreWithBlob();
    const dir = tempDir('s3cs-tier-adopt-old-');
    const layout = new TierLayout(dir);
    const kept = 'a blob an earlier tier kept';
    mkdirSync(layout.temp, { recursive: true });
    mkdirSync(join(layout.blobs, 'sha256'), { recursive: true });
    writeFileSync(layout.blobPath(digestOf(kept)), kept);
    const tier = await ReadTier.open(store, { dir, maxBytes: 1024 * 1024 });
    await tier.close();
    expect(readFileSync(layout.blobPath(digestOf(kept)), 'utf8')).toBe(kept);
    expect(existsSync(layout.marker)).toBe(true);
  });
});
