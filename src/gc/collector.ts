import type { Logger } from 'pino';
import type { BlobEntry } from '../blobstore/types.js';
import { FINAL_WINDOW_MS, ReclaimMarks, type ReclaimMark } from '../metadata/reclaim-marks.js';
import { deleteWithin } from './deletes.js';
import { dropDanglingHolds, dropExpiredLeases, dropOrphanedResources, tidy } from './housekeeping.js';
import { CollectorLock, LockLost } from './lock.js';
import { mapAllEnded } from './settled-map.js';
import { recentReferences, scanRoots, stopIfStopped, type RootSources, type Roots } from './roots.js';
import { isStoreError } from '../errors.js';
import { gcExpiredLeases, gcReclaimedBlobs, gcReclaimedBytes, gcRuns } from '../metrics/registry.js';

export interface CollectorOptions {
  /** How long a blob must have been seen unreferenced before it goes. */
  graceMs: number;
  /**
   * A blob modified less than twice this long ago stays: BuildKit's exporter finds a blob, skips
   * its touch when it is younger than this, and writes the record naming it only once the rest of
   * the export is uploaded, minutes or hours later. The second period stands for that export and
   * for the clocks of S3, BuildKit and the collector disagreeing.
   */
  touchRefreshMs: number;
  logger: Logger;
  /** Told how far a run has got (for a progress display). */
  onProgress?: ((stage: string, done: number) => void) | undefined;
  /** How long taking the lock waits before reading it back (tests shorten it). */
  lockSettleMs?: number | undefined;
  /**
   * How long after a delete was cut off at its deadline the bucket is asked whether it landed
   * (tests shorten it). See finalBatch.
   */
  deleteSettleMs?: number | undefined;
  /** A namespace that held more blobs than this at the scan has the last check read a batch's holds by key (tests lower it). */
  holdsByKeyAbove?: number | undefined;
}


export interface Tally {
  count: number;
  bytes: number;
}

export interface CollectionReport {
  deleted: boolean;
  /** Set when the run did nothing: another collector holds the bucket's lock, or the run was stopped. */
  skipped?: string;
  blobs: Tally;
  /** Something needs them. */
  kept: Tally;
  /** Unreferenced, but within the grace, too young, or found again at the last check. */
  waiting: Tally;
  /** Deleted by this run. */
  reclaimed: Tally;
  /** Would be deleted (a dry run), or could not be this time (the last check ran too long). */
  reclaimable: Tally;
  expiredLeases: number;
  /** Resources of leases that are gone (a lease Delete cut short), removed. */
  orphanedResourcesRemoved: number;
  /** Staging objects a failed copy or a crash left, removed. */
  stagingRemoved: number;
  /** Holds of blobs that are not stored (a crash between a hold and its bytes), removed. */
  danglingHoldsRemoved: number;
  /** Cache records naming blobs that are not stored, with those blobs. */
  brokenRecords: { name: string; missing: string[] }[];
  roots: { records: number; holds: number; leases: number; ingests: number };
}

/** Candidates whose last check and deletion go together, so that they fit in the final window. */
const FINAL_BATCH = 50;
/**
 * Past this many holds, reading a batch's 50 holds of a namespace (a request each, 16 at a time)
 * costs the last check less than listing all of them (a request per thousand, one after another).
 */
const HOLDS_BY_KEY_ABOVE = 4000;
/** Reclaim notes written at once while the blobs are listed. */
const NOTES_AT_ONCE = 16;

/**
 * The garbage collector: marks what cache records, holds, leases and ingests need, notes each
 * unreferenced blob (the grace counts from that note), and deletes a blob only after the grace,
 * once it is older than twice the touch refresh, and after a last check of holds, lease resources and
 * recently written records that the writers' protocol (reclaim-marks.ts) makes race-free.
 * A dry run writes and deletes nothing.
 */
export class Collector {
  private readonly marks: ReclaimMarks;

  constructor(
    private readonly sources: RootSources,
    private readonly options: CollectorOptions,
  ) {
    this.marks = new ReclaimMarks(sources.docs);
  }

  /**
   * One collection. A deleting one holds the bucket's collector lock throughout (or does nothing
   * when another holds it). `signal` (the daemon stopping, `gc` interrupted) stops it between its
   * requests to S3, at any step: from then on it deletes nothing, only lets go of its lock, and
   * reports what it did so far as `skipped: 'stopped'`.
   */
  async run(mode: { delete: boolean; signal?: AbortSignal }, now = Date.now()): Promise<CollectionReport> {
    const lock = new CollectorLock(this.sources.docs, this.options.lockSettleMs, (err) =>
      this.options.logger.warn({ err }, err instanceof LockLost ? 'collector: lock lost; the run stops before its next deletion' : 'collector: lock renewal failed; trying again in 30 s'),
    );
    if (mode.delete) {
      const taken = await lock.acquire().catch((err: unknown) => {
        // a run that could not take the lock failed as much as one failing later: alerts count it
        gcRuns.inc({ mode: 'delete', outcome: 'error' });
        throw err;
      });
      if (!taken.held) {
        this.options.logger.info({ by: taken.by, until: taken.until }, 'another collector holds the bucket; this one deletes nothing now');
        return { ...emptyReport(true), skipped: `another collector (${taken.by}) holds the bucket's lock until ${taken.until}` };
      }
      lock.renewWhileHeld();
    }
    const runMode = mode.delete ? 'delete' : 'dry-run';
    let report = emptyReport(mode.delete);
    try {
      try {
        await this.collect(mode, now, lock, report);
      } catch (err) {
        if (!(mode.signal?.aborted && isStoreError(err, 'cancelled'))) throw err;
        this.options.logger.info({ reclaimed: report.reclaimed }, 'collection stopped');
        report = { ...report, skipped: 'stopped' };
      }
      gcRuns.inc({ mode: runMode, outcome: 'ok' });
      gcReclaimedBlobs.inc(report.reclaimed.count);
      gcReclaimedBytes.inc(report.reclaimed.bytes);
      gcExpiredLeases.inc(report.expiredLeases);
      return report;
    } catch (err) {
      gcRuns.inc({ mode: runMode, outcome: 'error' });
      throw err;
    } finally {
      if (mode.delete) await lock.release().catch((err: unknown) => this.options.logger.warn({ err }, 'collector: lock not removed'));
    }
  }

  /** Fills `report` as it goes; throws a cancelled StoreError where `mode.signal` stops it. */
  private async collect(mode: { delete: boolean; signal?: AbortSignal }, now: number, lock: CollectorLock, report: CollectionReport): Promise<void> {
    const { logger } = this.options;
    const progress = this.options.onProgress ?? (() => undefined);
    const { signal } = mode;
    const halt = () => stopIfStopped(signal);
    halt();
    progress('marking', 0);
    const roots = await scanRoots(this.sources, now, 'all', signal);
    report.roots = roots.counts;
    halt();
    if (mode.delete) await lock.keep();
    const marks = new Map<string, ReclaimMark>();
    for await (const { digest, mark } of this.marks.all(signal)) marks.set(digest, mark);
    halt();
    if (mode.delete) await lock.keep();

    const stored = new Set<string>();
    const candidates: { blob: BlobEntry; mark: ReclaimMark }[] = [];
    // Notes written and removed while the listing goes on, a few at once: one after another,
    // a bucket of many newly unreferenced blobs would cost a round trip each.
    const noting = new Set<Promise<void>>();
    let noteFailed: unknown;
    const note = async (work: Promise<unknown>) => {
      const p: Promise<void> = work.then(
        () => undefined,
        (err: unknown) => void (noteFailed ??= err),
      );
      noting.add(p);
      void p.finally(() => noting.delete(p));
      if (noting.size >= NOTES_AT_ONCE) await Promise.race(noting);
      if (noteFailed) throw noteFailed;
    };
    try {
      for await (const blob of this.sources.blobs.listBlobs()) {
        halt();
        if (mode.delete) await lock.keep();
        stored.add(blob.digest);
        add(report.blobs, blob.size);
        if (report.blobs.count % 1000 === 0) progress('sweeping', report.blobs.count);
        const mark = marks.get(blob.digest);
        if (roots.digests.has(blob.digest)) {
          add(report.kept, blob.size);
          // needed again: the grace starts over should it ever be unreferenced
          if (mark && mode.delete) await note(this.marks.remove(blob.digest));
          continue;
        }
        if (!mark || mark.deletedAt) {
          // newly unreferenced (or stored again since a deletion): the grace starts now
          add(report.waiting, blob.size);
          if (mode.delete) await note(this.marks.write(blob.digest, { since: new Date(now).toISOString() }));
          continue;
        }
        const old = blob.lastModified.getTime() <= now - 2 * this.options.touchRefreshMs;
        const due = new Date(mark.since).getTime() <= now - this.options.graceMs;
        if (!old || !due) add(report.waiting, blob.size);
        else if (!mode.delete) add(report.reclaimable, blob.size);
        else candidates.push({ blob, mark });
      }
    } finally {
      // stopped or failed too: no note of this run lands after its lock is let go of
      await Promise.all(noting);
    }
    if (noteFailed) throw noteFailed;

    for (const [name, layers] of roots.recordLayers) {
      const missing = layers.filter((d) => !stored.has(d));
      if (missing.length > 0) report.brokenRecords.push({ name, missing });
    }
    if (mode.delete) {
      for (let i = 0; i < candidates.length; i += FINAL_BATCH) {
        halt();
        await lock.keep();
        progress('deleting', i);
        await this.finalBatch(candidates.slice(i, i + FINAL_BATCH), roots, report, signal);
      }
      halt();
      await lock.keep();
      report.danglingHoldsRemoved = await dropDanglingHolds(this.sources, roots.held, stored, now, lock, logger, signal);
      halt();
      await lock.keep();
      report.stagingRemoved = await tidy(this.sources, this.marks, marks, stored, now, signal);
      halt();
      await lock.keep();
      report.expiredLeases = await dropExpiredLeases(this.sources, now, signal);
      halt();
      report.orphanedResourcesRemoved = await dropOrphanedResources(this.sources, lock, signal);
    }
    logger.info(
      { kept: report.kept, waiting: report.waiting, reclaimed: report.reclaimed, reclaimable: report.reclaimable, roots: report.roots },
      mode.delete ? 'collection done' : 'collection (dry run) done',
    );
  }

  /**
   * Marks the batch final, looks once more at everything a writer may have written before that
   * (the writers' order makes anything later see the mark and wait), and deletes what is still
   * unneeded and old, unless the look took longer than the window writers wait for, or `signal`
   * stopped the run meanwhile: then the batch is left as the look found it, its notes waiting.
   */
  private async finalBatch(batch: { blob: BlobEntry; mark: ReclaimMark }[], roots: Roots, report: CollectionReport, signal?: AbortSignal): Promise<void> {
    const started = performance.now();
    const finalAt = new Date().toISOString();
    // the moment writers stop waiting for this batch, less a margin for the delete to land
    const deadline = Date.parse(finalAt) + FINAL_WINDOW_MS;
    await mapAllEnded(batch, ({ blob, mark }) => this.marks.write(blob.digest, { since: mark.since, finalAt }), 16);
    const above = this.options.holdsByKeyAbove ?? HOLDS_BY_KEY_ABOVE;
    const byKey = { digests: batch.map(({ blob }) => blob.digest), namespaces: new Set([...roots.holdsIn].filter(([, n]) => n > above).map(([ns]) => ns)) };
    const recent = await recentReferences(this.sources, roots, byKey);
    const doomed: { blob: BlobEntry; mark: ReclaimMark }[] = [];
    for (const entry of batch) {
      if (recent.has(entry.blob.digest)) add(report.waiting, entry.blob.size);
      else doomed.push(entry);
    }
    // still stored, and not touched since it was listed: a blob modified since is someone's again
    const stillDoomed = async (blob: BlobEntry): Promise<boolean> => {
      const stat = await this.sources.blobs.statBlob(blob.digest, { fresh: true });
      return stat !== undefined && stat.lastModified.getTime() <= Date.now() - 2 * this.options.touchRefreshMs;
    };
    const gone: BlobEntry[] = [];
    if (signal?.aborted) {
      for (const { blob } of doomed) add(report.reclaimable, blob.size);
    } else if (performance.now() - started > FINAL_WINDOW_MS) {
      // Writers stop waiting for this batch about now: deleting later could race them.
      for (const { blob } of doomed) add(report.reclaimable, blob.size);
      this.options.logger.warn({ ms: Math.round(performance.now() - started), blobs: doomed.length }, 'collector: last check too slow, deleting nothing of this batch');
    } else {
      const outcome = await deleteWithin(this.sources.blobs, doomed.map((d) => d.blob), deadline, this.options.logger, stillDoomed, { settleMs: this.options.deleteSettleMs, signal });
      gone.push(...outcome.gone);
      for (const blob of outcome.deleted) add(report.reclaimed, blob.size);
      for (const blob of outcome.kept) add(report.reclaimable, blob.size);
      for (const blob of outcome.spared) add(report.waiting, blob.size);
    }
    const deletedAt = new Date().toISOString();
    // Deleted (or not found after a delete cut off): the note says so, which makes writers ask
    // the bucket itself; for the others the grace goes on from the same `since`.
    const goneDigests = new Set(gone.map((b) => b.digest));
    await mapAllEnded(
      batch,
      ({ blob, mark }) =>
        this.marks.write(blob.digest, goneDigests.has(blob.digest) ? { since: mark.since, finalAt, deletedAt } : { since: mark.since }),
      16,
    );
  }
}

function emptyReport(deleted: boolean): CollectionReport {
  return {
    deleted,
    blobs: tally(),
    kept: tally(),
    waiting: tally(),
    reclaimed: tally(),
    reclaimable: tally(),
    expiredLeases: 0,
    orphanedResourcesRemoved: 0,
    stagingRemoved: 0,
    danglingHoldsRemoved: 0,
    brokenRecords: [],
    roots: { records: 0, holds: 0, leases: 0, ingests: 0 },
  };
}

function tally(): Tally {
  return { count: 0, bytes: 0 };
}

function add(t: Tally, bytes: number): void {
  t.count++;
  t.bytes += bytes;
}
