import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/types.js';
import { ingestKey, type LiveIngests } from './ingest.js';
import type { IngestRecords } from './ingest-records.js';
import type { Memberships } from './memberships.js';
import { sweepRemoved, sweepRuns } from '../metrics/registry.js';

interface IngestSweepOptions {
  blobs: BlobStore;
  memberships: Memberships;
  records: IngestRecords;
  live: LiveIngests;
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
    const { blobs, memberships, records, live, logger, ingestExpiryMs, orphanUploadGraceMs } = this.options;
    const cutoff = now - ingestExpiryMs;
    let discarded = 0;
    sweepRuns.inc();
    for (const [key, ingest] of live) {
      if (ingest.lockedSince || ingest.updatedAt.getTime() >= cutoff) continue;
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
        continue;
      }
      await ingest.upload.abort();
      await records.remove(ingest).catch(() => undefined);
      discarded++;
      logger.info({ ns: ingest.ns, ref: ingest.ref, offset: ingest.offset }, 'discarded expired ingest');
    }
    const owned = liveUploads(live, blobs);
    for await (const ns of memberships.namespaces()) {
      // read, never taken from what listings kept: the sweep drops records, and aborts uploads
      // no record owns, by what they say now
      for await (const record of records.all(ns, { fresh: true })) {
        const kept = new Date(record.updatedAt).getTime() >= cutoff || live.has(ingestKey(ns, record.ref)) || records.holders.heldElsewhere(record);
        if (kept) {
          if (record.upload) owned.add(blobs.uploadIdentity(record.upload));
          continue;
        }
        await records.drop(ns, record);
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
}

function liveUploads(live: LiveIngests, blobs: BlobStore): Set<string> {
  const owned = new Set<string>();
  for (const ingest of live.values()) {
    const handle = ingest.upload.handle();
    if (handle) owned.add(blobs.uploadIdentity(handle));
  }
  return owned;
}
