import { mkdir, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
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
 * under way are unfinished by definition and removed, as are strays under blobs/.
 */
export async function loadTier(layout: TierLayout): Promise<FoundBlob[]> {
  await rm(layout.temp, { recursive: true, force: true });
  await mkdir(layout.temp, { recursive: true });
  await mkdir(layout.blobs, { recursive: true });
  const files: { digest: string | undefined; path: string }[] = [];
  for (const algorithm of await readdir(layout.blobs)) {
    const dir = join(layout.blobs, algorithm);
    const names = await readdir(dir).catch(() => undefined);
    if (!names) {
      files.push({ digest: undefined, path: dir });
      continue;
    }
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

/** Directories claimed by a tier of this process (tests run several daemons in one). */
const claimedHere = new Set<string>();

/**
 * One daemon per directory: two would each count only their own fills against the limit and
 * remove each other's under tmp/. A process id is a weak lock (it may be reused, and another
 * container's process is invisible), but it catches the common mistake of two daemons on one
 * host given the same --cache-dir, and a crash leaves nothing that needs clearing by hand.
 */
export async function claimTier(layout: TierLayout): Promise<() => Promise<void>> {
  await mkdir(layout.dir, { recursive: true });
  if (claimedHere.has(layout.dir)) throw new Error('in use by another daemon in this process');
  const owner = Number.parseInt(await readFile(layout.owner, 'utf8').catch(() => ''), 10);
  if (Number.isSafeInteger(owner) && owner !== process.pid && alive(owner)) {
    throw new Error(`in use by process ${owner} (see ${layout.owner}); give each daemon its own directory`);
  }
  await writeFile(layout.owner, `${process.pid}\n`);
  claimedHere.add(layout.dir);
  return async () => {
    claimedHere.delete(layout.dir);
    await unlink(layout.owner).catch(() => undefined);
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
