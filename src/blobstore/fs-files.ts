import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The two syncs that make a local file durable: its bytes, and the entry in its directory (a
 * file created or renamed into place is not there for good until its directory is synced).
 * Apart so a test can see the order they come in.
 */
export interface FsSync {
  file(fh: FileHandle): Promise<void>;
  dir(path: string): Promise<void>;
}

export const diskSync: FsSync = {
  file: (fh) => fh.sync(),
  async dir(path) {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

/** A temporary file a document or record is written to before its rename into place. */
export const TEMP_NAME = /^(doc|record)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Writes `body` to `tmp`, synced, renames it to `path` and syncs `path`'s directory: a reader
 * sees a whole file or none, and a power loss does not undo it nor leave it empty. A failure
 * removes `tmp`, which nobody else would (a crash's are swept: see FsBlobStore.listUploads).
 */
export async function writeAside(tmp: string, path: string, body: Buffer, sync: FsSync): Promise<void> {
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(body);
      await sync.file(fh);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await sync.dir(dirname(path));
}
