import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/types.js';
import { ingestKey, type Ingest, type LiveIngests } from './ingest.js';
import type { IngestRecords } from './ingest-records.js';
import type { Memberships } from './memberships.js';
import type { RefWork } from './ref-work.js';
import { sweepRemoved, sweepRuns } from '../metrics/registry.js';

interface IngestSweepOptions {
  blobs: BlobStore;
  memberships: Memberships;
  records: IngestRecords;
  live: LiveIngests;
  /** Shared with Ingests: an ingest being opened or given up is not swept meanwhile, nor opened while swept. */
  refWork: RefWork;
  logger: Logger;
  /** An ingest nobody has written to for this long is discarded, with its stored bytes. */
  ingestExpiryMs: number;
  /** An upload in the staging area no ingest owns is discarded once this old. */
  orphanUploadGraceMs: number;
}

/** The expiry of abandoned ingests and of uploads no ingest owns, so they stop costing money. */
export class IngestSweep {
  constructor(private readonly options: IngestSweepOptions) {}

  /**
   * Discards ingests untouched for longer than the expiry: those held in this process, and those
   * recorded in the bucket by any daemon (a crashed one included), aborting their multipart
   * uploads so they stop costing money; then uploads no ingest owns at all (left by a crash
   * before the ingest was recorded). Returns how many were discarded.
   */
  async run(now = Date.now()): Promise<number> {
    const { blobs, memberships, records, live, refWork, logger, ingestExpiryMs, orphanUploadGraceMs } = this.options;
    const cutoff = now - ingestExpiryMs;
    let discarded = 0;
    sweepRuns.inc();
    for (const [key, ingest] of live) {
      // one an open is taking up, or an Abort giving up, meanwhile is theirs: a later sweep sees it again
      if (ingest.lockedSince || ingest.updatedAt.getTime() >= cutoff || refWork.since(key)) continue;
      // From here to its end an open of the ref is refused as locked: one meanwhile would find
      // nothing here, take the ingest up from its record (the same upload) and write the record
      // anew, and this would then discard both.
      if (await refWork.givingUp(key, () => this.expire(key, ingest))) discarded++;
    }
    const owned = liveUploads(live, blobs);
    for await (const ns of memberships.namespaces()) {
      // read, never taken from what listings kept: the sweep drops records, and aborts uploads
      // no record owns, by what they say now
      for await (const record of records.all(ns, { fresh: true })) {
        const key = ingestKey(ns, record.ref);
        const kept = new Date(record.updatedAt).getTime() >= cutoff || live.has(key) || records.holders.heldElsewhere(record);
        // an open may have read the record and be taking the ingest up (its upload is then its)
        const busy = !kept && refWork.since(key) !== undefined;
        if (kept || busy) {
          if (busy) logger.debug({ ns, ref: record.ref }, 'kept an expired ingest record for a later sweep: its ref is being opened or given up');
          if (record.upload) owned.add(blobs.uploadIdentity(record.upload));
          continue;
        }
        await refWork.givingUp(key, () => records.drop(ns, record));
        discarded++;
        logger.info({ ns, ref: record.ref }, 'discarded expired ingest record and its stored bytes');
      }
    }
    // The grace covers an upload started a moment ago whose record is still on its way. Under
    // blob keys BuildKit's own uploads appear too: only ones older than any ingest may live go.
    for await (const upload of blobs.listUploads()) {
      if (owned.has(blobs.uploadIdentity(upload.handle))) continue;
      const grace = upload.staging ? orphanUploadGraceMs : Math.max(orphanUploadGraceMs, ingestExpiryMs);
      if (upload.startedAt.getTime() >= now - grace) continue;
      // an ingest may have taken it up since `owned` was made (a reopen that returned meanwhile)
      if (liveUploads(live, blobs).has(blobs.uploadIdentity(upload.handle))) continue;
      await blobs.discardUpload(upload.handle);
      discarded++;
      logger.info({ upload: upload.handle, startedAt: upload.startedAt }, 'discarded an upload no ingest owns');
    }
    sweepRemoved.inc(discarded);
    return discarded;
  }

  /** Discards an expired ingest this process holds, unless another daemon continued it; whether it did. */
  private async expire(key: string, ingest: Ingest): Promise<boolean> {
    const { records, live, logger } = this.options;
    live.delete(key);
    ingest.hasher.close();
    // Another daemon may have continued it from its record since: then the bytes are its.
    const record = ingest.recorded
      ? await records.read(ingest.ns, ingest.ref).catch(async (err: unknown) => {
          // let go here at least: the record, and what it stores, stays for a later sweep
          await ingest.upload.forget();
          throw err;
        })
      : undefined;
    // one naming another writer was written there since (one of an earlier version is told by its time)
    const elsewhere = record?.writer !== undefined && record.writer !== records.holders.self.id;
    if (record && (elsewhere || new Date(record.updatedAt).getTime() > ingest.updatedAt.getTime())) {
      await ingest.upload.forget();
      return false;
    }
    await ingest.upload.abort();
    await records.remove(ingest).catch(() => undefined);
    logger.info({ ns: ingest.ns, ref: ingest.ref, offset: ingest.offset }, 'discarded expired ingest');
    return true;
  }
}

function liveUploads(live: LiveIngests, blobs: BlobStore): Set<string> {
  const owned = new Set<string>();
  for (const ingest of live.values()) {
    const handle = ingest.upload.handle();
    if (handle) owned.add(blobs.uploadIdentity(handle));
  }
  return owned;
}
