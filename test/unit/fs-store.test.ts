import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FsSync } from '../../src/blobstore/fs-files.js';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { digestOf } from '../../src/digest.js';
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
