import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, relative } from 'node:path';
import { StoreError, invalidArgument, resourceExhausted, unavailable } from '../errors.js';

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

const FULL = new Set(['ENOSPC', 'EDQUOT']);
/** The directory cannot be used as it stands (gone, read-only, failing, out of descriptors): none is the client's doing. */
const UNUSABLE = new Set(['EMFILE', 'ENFILE', 'EIO', 'EROFS', 'ENOENT', 'ENOTDIR', 'EACCES', 'EPERM']);

/**
 * A failure of the local directory as a client is told it: what could not be done and why,
 * with a path relative to the store's root at most (the server's own layout is not a client's
 * business, and an INTERNAL "bug" it is not). A system error of another kind is still ours
 * (INTERNAL), named by its code alone: its message carries the server's absolute path. Anything
 * that is not a system error is passed on as it is.
 */
export function localError(err: unknown, what: string, root: string): unknown {
  if (err instanceof StoreError) return err;
  const { code, path } = (err ?? {}) as NodeJS.ErrnoException;
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return err;
  const rel = typeof path === 'string' ? relative(root, path) : '';
  const at = rel && !rel.startsWith('..') && !isAbsolute(rel) ? ` at ${rel}` : '';
  if (FULL.has(code)) return resourceExhausted(`${what}: the store's local directory is full (${code}${at})`);
  if (UNUSABLE.has(code)) return unavailable(`${what}: the store's local directory cannot be used (${code}${at})`, err);
  // A ref, record name or resource id is a file name here: within the daemon's own bounds
  // (768, 1,024, 512 bytes) yet past the file system's 255 a name.
  if (code === 'ENAMETOOLONG') return invalidArgument(`${what}: a name is longer than the local directory's file system takes in one path segment (255 bytes); use a shorter one`);
  return new StoreError('internal', `${what}: ${code}${at}`, { cause: err });
}
