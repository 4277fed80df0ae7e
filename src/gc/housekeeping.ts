import type { Logger } from 'pino';
import { STAGING_DOCS as STAGING_PREFIX } from '../blobstore/s3/keys.js';
import { storedInstant } from '../clock.js';
import { LeaseStore } from '../leases/store.js';
import { docKeys } from '../metadata/documents.js';
import type { ReclaimMark, ReclaimMarks } from '../metadata/reclaim-marks.js';
import type { CollectorLock } from './lock.js';
import { stopIfStopped, type RootSources } from './roots.js';
import { mapAllEnded } from './settled-map.js';

/**
 * A deleting collection's steps after its deletions: what is left of blobs that are gone (marks,
 * deletion notes, holds), leftover staging objects, expired leases and resources of leases that
 * are gone. Each stops between its requests once `signal` aborts (see stopIfStopped).
 */

/** How long after the day its upload began a leftover staging object goes. */
const STAGING_KEEP_MS = 7 * 24 * 3_600_000;
/**
 * How old a hold of a blob that is not stored must be before it goes: new bytes and their hold
 * are written side by side (a staging blob's hold beside its copy into place, which for a blob
 * of terabytes on a slow store takes hours), so only a crash between the two leaves such a hold.
 */
const DANGLING_HOLD_MS = 24 * 3_600_000;
/**
 * A deleted blob's mark stays this long, so that other daemons' caches learn of the deletion. A
 * daemon remembers for 10 minutes that a blob exists (S3BlobStore's cache of HEADs), learned at
 * the latest as the DELETE lands, within 5 s of `finalAt` (one cut off, as a rule in the 10 s
 * after); one that still remembers finds the bytes present and, with no mark to read, answers
 * AlreadyExists for them (see ReclaimGuard). An hour is well past that, and past the 20 s two
 * collectors' clocks may disagree by.
 */
const DELETED_MARK_KEEP_MS = 3_600_000;

/**
 * Marks of blobs no longer stored, once old enough (meanwhile one lacking its outcome gets it),
 * and deletion notes of namespaces for them.
 */
export async function tidy(
  sources: RootSources,
  reclaimMarks: ReclaimMarks,
  marks: Map<string, ReclaimMark>,
  stored: Set<string>,
  now: number,
  signal?: AbortSignal,
): Promise<number> {
  for (const [digest, mark] of marks) {
    if (stored.has(digest)) continue;
    // A mark final with no `deletedAt` may be of bytes deleted all the same (the note of the
    // outcome failed, or its collector died after the DELETE): it stays as long, from `finalAt`.
    // One with neither says no more to a writer than no mark at all, and goes at once.
    const gone = mark.deletedAt ?? mark.finalAt;
    if (gone !== undefined && now - new Date(gone).getTime() <= DELETED_MARK_KEEP_MS) {
      // The outcome it lacks is written now, as of the last check (the DELETE came within seconds
      // of it): the sweep starts the grace over only for a mark saying deleted, and bytes stored
      // again meanwhile would otherwise inherit this one's `since`, up for deletion at once.
      if (mark.deletedAt === undefined) {
        stopIfStopped(signal);
        await reclaimMarks.write(digest, { since: mark.since, finalAt: gone, deletedAt: gone });
      }
      continue;
    }
    stopIfStopped(signal);
    await reclaimMarks.remove(digest);
  }
  for await (const ns of sources.memberships.namespaces()) {
    stopIfStopped(signal);
    const prefix = docKeys.deletedPrefix(ns);
    for await (const key of sources.docs.list(prefix)) {
      const digest = key.slice(prefix.length);
      if (stored.has(digest)) continue;
      stopIfStopped(signal);
      // asked again: a blob written and then Deleted in this namespace after the listing
      // passed it has a fresh mark, and without it the namespace would see the blob again
      if (await sources.blobs.statBlob(digest, { fresh: true })) continue;
      await sources.docs.remove(key);
    }
  }
  // A staging object lives only between its upload's completion and its copy into place (its
  // key names the day the upload began); one a failed copy or a crash left is garbage once that
  // day is well past. Uploads still in progress are no objects, and the sweep sees to them.
  let staging = 0;
  const before = new Date(now - STAGING_KEEP_MS).toISOString().slice(0, 10);
  for await (const key of sources.docs.list(STAGING_PREFIX)) {
    const day = key.slice(STAGING_PREFIX.length, STAGING_PREFIX.length + 10);
    if (!/^\d{4}-\d\d-\d\d$/.test(day) || day >= before) continue;
    stopIfStopped(signal);
    await sources.docs.remove(key);
    staging++;
  }
  return staging;
}

/**
 * Holds naming blobs that are not stored: listed by their namespace, yet Info and Read there
 * answer NotFound. The bucket is asked again for each (the listing may have missed a blob
 * stored while it ran), and only holds older than DANGLING_HOLD_MS go.
 */
export async function dropDanglingHolds(
  sources: RootSources,
  held: Set<string>,
  stored: Set<string>,
  now: number,
  lock: CollectorLock,
  logger: Logger,
  signal?: AbortSignal,
): Promise<number> {
  const missing = [...held].filter((d) => !stored.has(d));
  if (missing.length === 0) return 0;
  const namespaces: string[] = [];
  for await (const ns of sources.memberships.namespaces()) namespaces.push(ns);
  let dropped = 0;
  // a hold taken away is put back before a failure elsewhere ends the run and the lock goes
  await mapAllEnded(missing, dropIfDangling, 16);
  stopIfStopped(signal);
  return dropped;

  async function dropIfDangling(digest: string): Promise<void> {
    // a stop starts no more (it is thrown once all under way are done)
    if (signal?.aborted) return;
    if (await sources.blobs.statBlob(digest, { fresh: true })) return;
    for (const ns of namespaces) {
      // before each removal, never between one and its putting back: a lock lost stops it here
      if (signal?.aborted) return;
      await lock.keep();
      const hold = await sources.memberships.read(ns, digest, { fresh: true });
      if (!hold || storedInstant(hold.createdAt).getTime() > now - DANGLING_HOLD_MS) continue;
      await sources.memberships.remove(ns, digest);
      // A commit of the same bytes may have landed, with its hold, between the look and the
      // removal: then the hold is put back (as read; a label written in that moment is lost).
      // One whose bytes are still on their way at this moment loses its hold: a window of a
      // round trip, open only where a day-old dangling hold of the same digest waits. A look
      // that fails puts it back too: the bytes may be there.
      const stored = await sources.blobs.statBlob(digest, { fresh: true }).catch(async (err: unknown) => {
        await sources.memberships.write(ns, digest, hold);
        throw err;
      });
      if (stored) {
        await sources.memberships.write(ns, digest, hold);
        continue;
      }
      dropped++;
      logger.info({ ns, digest, createdAt: hold.createdAt }, 'collector: removed a hold of a blob that is not stored');
    }
  }
}

/** Under the lock: while a resource is away and put back, no collector may be deciding. */
export async function dropOrphanedResources(sources: RootSources, lock: CollectorLock, signal?: AbortSignal): Promise<number> {
  let dropped = 0;
  for await (const ns of sources.memberships.namespaces()) {
    stopIfStopped(signal);
    await lock.keep();
    // asked before each lease's resources are taken away, never between that and putting them back
    dropped += await sources.leases.dropOrphanedResources(ns, async () => {
      stopIfStopped(signal);
      await lock.keep();
    });
  }
  return dropped;
}

/** containerd collects a lease once its `containerd.io/gc.expire` time has passed. */
export async function dropExpiredLeases(sources: RootSources, now: number, signal?: AbortSignal): Promise<number> {
  let dropped = 0;
  for await (const ns of sources.memberships.namespaces()) {
    stopIfStopped(signal);
    for await (const lease of sources.leases.all(ns, signal)) {
      if (!LeaseStore.expired(lease, now)) continue;
      stopIfStopped(signal);
      if (await sources.leases.deleteIfExpired(ns, lease.id, now)) dropped++;
    }
  }
  return dropped;
}
