import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { localError, type FsSync } from '../../src/blobstore/fs-files.js';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { digestOf } from '../../src/digest.js';
import { isStoreError, notFound } from '../../src/errors.js';
import { tempDir } from '../support/harness.js';

async function storeIn(sync?: FsSync): Promise<{ store: FsBlobStore; root: string }> {
  const root = join(tempDir('s3cs-fs-'), 'root');
  const store = new FsBlobStore(root, 's3cs/', sync);
  await store.init();
  return { store, root };
}

/** Syncs as the disk does, noting each with whether `final()` names a file at that moment. */
function watchedSync(final: () => string) {
  const seen: string[] = [];
  const sync: FsSync = {
    async file(fh) {
      seen.push(`file (${existsSync(final()) ? 'after' : 'before'} the rename)`);
      await fh.sync();
    },
    async dir(path) {
      seen.push(`dir ${path.split('/').at(-1)} (${existsSync(final()) ? 'after' : 'before'} the rename)`);
    },
  };
  return { seen, sync };
}

describe('local directory uploads', () => {
  it('take a WRITE whose checkpoint sync failed again at the same offset, storing each byte once', async () => {
    let failNext = true;
    const sync: FsSync = {
      async file(fh) {
        if (failNext) {
          failNext = false;
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        }
        await fh.sync();
      },
      async dir() {},
    };
    const { store } = await storeIn(sync);
    const MiB = 1024 * 1024;
    const blob = Buffer.from(Array.from({ length: 9 * MiB }, (_, i) => (i * 7) % 251));
    const upload = store.createUpload({});
    // the piece that reaches the first checkpoint (8 MiB) is synced, and that sync fails
    await expect(upload.write(blob.subarray(0, 8 * MiB))).rejects.toThrow(/cannot be used \(EIO/);
    await upload.write(blob.subarray(0, 8 * MiB));
    await upload.write(blob.subarray(8 * MiB));
    await upload.commit(digestOf(blob), blob.length);
    const read: Buffer[] = [];
    for await (const piece of await store.readBlob(digestOf(blob), 0, blob.length)) read.push(piece);
    expect(Buffer.concat(read).equals(blob)).toBe(true);
  });
});

describe('local directory files', () => {
  it('removes the temporary file of a document whose rename failed', async () => {
    const { store, root } = await storeIn();
    mkdirSync(join(root, 's3cs', 'v1', 'in-the-way', 'a-directory'), { recursive: true });
    await expect(store.putDoc('v1/in-the-way', Buffer.from('{}'))).rejects.toThrow();
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('removes the temporary file of a record whose rename failed', async () => {
    const { store, root } = await storeIn();
    mkdirSync(join(root, 'manifests', 'in-the-way', 'a-directory'), { recursive: true });
    await expect(store.putRecord('in-the-way', Buffer.from('{}'))).rejects.toThrow();
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('syncs a document before its rename and its directory after', async () => {
    let path = '';
    const { seen, sync } = watchedSync(() => path);
    const { store, root } = await storeIn(sync);
    path = join(root, 's3cs', 'v1', 'namespaces', 'a');
    await store.putDoc('v1/namespaces/a', Buffer.from('{}'));
    // "v1" and "namespaces" were made for it: their entries are synced in the directories above
    expect(seen).toEqual([
      'dir v1 (before the rename)',
      'dir s3cs (before the rename)',
      'file (before the rename)',
      'dir namespaces (after the rename)',
    ]);
  });

  it('syncs a record before its rename and its directory after', async () => {
    let path = '';
    const { seen, sync } = watchedSync(() => path);
    const { store, root } = await storeIn(sync);
    path = join(root, 'manifests', 'r');
    await store.putRecord('r', Buffer.from('{}'));
    expect(seen).toEqual(['file (before the rename)', 'dir manifests (after the rename)']);
  });

  it("syncs an upload's directory once its file is made, the file before its rename into blobs/, and blobs/ after", async () => {
    const data = Buffer.from('some bytes');
    let path = '';
    const { seen, sync } = watchedSync(() => path);
    const { store, root } = await storeIn(sync);
    path = join(root, 'blobs', digestOf(data));
    const upload = store.createUpload({});
    await upload.write(data);
    await upload.commit(digestOf(data), data.length);
    expect(seen).toEqual(['dir uploads (before the rename)', 'file (before the rename)', 'dir blobs (after the rename)']);
  });
});

describe("the local directory's failures as clients are told them", () => {
  const root = '/srv/store';
  const failed = (code: string, path?: string) => Object.assign(new Error(`${code}: failed, '${path}'`), { code, path, syscall: 'open' });

  it.each(['ENOSPC', 'EDQUOT'])('a full disk (%s) is RESOURCE_EXHAUSTED, saying the directory is full', (code) => {
    const err = localError(failed(code, `${root}/uploads/x`), 'write to an upload file', root);
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    expect((err as Error).message).toBe(`write to an upload file: the store's local directory is full (${code} at uploads/x)`);
  });

  it.each(['EMFILE', 'ENFILE', 'EIO', 'EROFS', 'ENOENT'])('%s is UNAVAILABLE, naming the operation and no path outside the root', (code) => {
    const err = localError(failed(code, '/elsewhere/file'), 'commit of sha256:abc', root);
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toBe(`commit of sha256:abc: the store's local directory cannot be used (${code})`);
  });

  it('passes a domain error, and a failure that is not a system error, on as it is', () => {
    const domain = notFound('content sha256:abc: not found');
    expect(localError(domain, 'read', root)).toBe(domain);
    const bug = new TypeError('x is undefined');
    expect(localError(bug, 'read', root)).toBe(bug);
  });

  it('names a name too long for the file system as the client\'s to shorten (InvalidArgument), without the path', () => {
    const err = localError(failed('ENAMETOOLONG', `${root}/s3cs/v1/ns/default/ingests/${'r'.repeat(300)}`), 'read of a document', root) as Error;
    expect(isStoreError(err, 'invalid-argument')).toBe(true);
    expect(err.message).toContain('255 bytes');
    expect(err.message).not.toContain(root);
  });

  it('names any other system error by its code and a path relative to the root only', () => {
    const err = localError(failed('EBADF', `${root}/blobs/x`), 'read', root) as Error;
    expect(isStoreError(err, 'internal')).toBe(true);
    expect(err.message).toBe('read: EBADF at blobs/x');
  });
});
