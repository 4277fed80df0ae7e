import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pMap from 'p-map';
import { isValidDigest } from '../../digest.js';
import type { TierLayout } from './layout.js';

/** A blob found on disk at start, with its last use as its file's mtime says. */
export interface FoundBlob {
  readonly digest: string;
  readonly size: number;
  readonly usedAt: number;
}

/**
 * What a previous run left: the blobs it kept (each was verified, synced and only then renamed
 * into place, so a file under blobs/ is complete), least recently used first. Fills it had
 * under way are unfinished by definition and removed, as are strays in its blobs/<algorithm>/.
 */
export async function loadTier(layout: TierLayout): Promise<FoundBlob[]> {
  await rm(layout.temp, { recursive: true, force: true });
  await mkdir(layout.temp, { recursive: true });
  await mkdir(layout.blobs, { recursive: true });
  const files: { digest: string | undefined; path: string }[] = [];
  for (const algorithm of await readdir(layout.blobs)) {
    const dir = join(layout.blobs, algorithm);
    // not a directory the tier made: another store's file (a local directory store's
    // blobs/sha256:<hex>, written here since), left alone and never counted
    const names = await readdir(dir).catch(() => undefined);
    if (!names) continue;
    for (const name of names) {
      const digest = `${algorithm}:${name}`;
      files.push({ digest: isValidDigest(digest) ? digest : undefined, path: join(dir, name) });
    }
  }
  const found = await pMap(
    files,
    async ({ digest, path }): Promise<FoundBlob | undefined> => {
      const st = digest ? await stat(path).catch(() => undefined) : undefined;
      if (!digest || !st?.isFile()) {
        await rm(path, { recursive: true, force: true });
        return undefined;
      }
      return { digest, size: st.size, usedAt: st.mtimeMs };
    },
    { concurrency: 16 },
  );
  return found.filter((b): b is FoundBlob => b !== undefined).sort((a, b) => a.usedAt - b.usedAt);
}

export { claimTier } from './owner.js';
