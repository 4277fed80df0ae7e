import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TierLayout } from './layout.js';

/** Digest algorithms a tier keeps blobs of: the only directories it makes under blobs/. */
const ALGORITHMS = new Set(['sha256', 'sha384', 'sha512']);

/**
 * Makes sure the directory is a read tier's before anything in it is removed: at start the tier
 * removes what it finds unfinished or unnamed under blobs/ and tmp/, and evicts what it adopts.
 * A --cache-dir given by mistake as the local directory store's --root (blobs/sha256:<hex>
 * files) or as containerd's content root (the same blobs/ layout, beside ingest/) would lose
 * that store's blobs, and one that was a home directory its tmp/. A directory that is empty, or
 * marked by a tier before, is the tier's; one that holds only what a tier writes (a tier from
 * before the mark) is marked and taken.
 */
export async function adoptTierDir(layout: TierLayout): Promise<void> {
  await mkdir(layout.dir, { recursive: true });
  if (await exists(layout.marker)) return;
  const top = await readdir(layout.dir);
  if (top.includes('ingest')) throw new Error('holds ingest/ beside blobs/, as containerd\'s content store does: give the read tier a directory of its own');
  // anything else there (a home directory, /var, another store) is not a tier's: its tmp/ would go
  const foreign = top.find((name) => name !== 'blobs' && name !== 'tmp' && name !== 'owner' && !name.startsWith('owner.'));
  if (foreign !== undefined) throw new Error(`holds ${foreign.slice(0, 100)}, which a read tier never writes: give the read tier an empty directory of its own`);
  const blobs = top.includes('blobs') ? await readdir(layout.blobs) : [];
  for (const name of blobs) {
    const isDir = (await stat(join(layout.blobs, name)).catch(() => undefined))?.isDirectory() ?? false;
    if (!isDir || !ALGORITHMS.has(name)) {
      throw new Error(`holds blobs/${name.slice(0, 100)}, which a read tier never writes (the local directory store's --root?): give the read tier a directory of its own`);
    }
  }
  await writeFile(layout.marker, 'a read tier of s3-content-store: its files under blobs/ and tmp/ are removed and evicted as it needs\n');
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}
