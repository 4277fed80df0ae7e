import type { Logger } from 'pino';
import type { BlobStore, UploadHandle } from '../blobstore/types.js';
import { docKeys, type Documents } from '../metadata/documents.js';
import { heldByStream, type Ingest } from './ingest.js';
import type { Memberships } from './memberships.js';
import type { IngestStatus } from './types.js';
import { LISTING_PAGE_KEYS, RecordedRefs } from './recorded-refs.js';
import { storedInstant } from '../clock.js';
import { HOLD_RENEW_MS, Holders, type HeldRecord } from './holders.js';

/**
 * An ingest as recorded in the bucket from the moment some of its bytes are stored there. With
 * `hash` or `rehash`, the first `offset` bytes are stored for good and the ingest can be
 * continued from there by any daemon (this one after a crash included): from the saved hash
 * state, or (`rehash`) by reading those bytes back through a new hash of that algorithm.
 * Without either it starts over; so does a daemon of a version that knows no `rehash`.
 */
export interface IngestRecord extends HeldRecord {
  ref: string;
  total: number;
  expected: string;
  startedAt: string;
  updatedAt: string;
  offset: number;
  upload?: UploadHandle;
  hash?: { algorithm: string; state: string };
  rehash?: { algorithm: string };
  /** The daemon instance that wrote it last (Holders.self.id): absent in records of earlier versions. */
  writer?: string;
}

/** How often a held ingest looks whether its record is due again, and how soon a failed renewal is tried again. */
const RENEW_TICK_MS = 1_000;
const RENEW_RETRY_MS = 2_000;

/** The bucket's records of ingests, as metadata documents: how other daemons and later runs find them. */
export class IngestRecords {
  /** Only where a record's read is a round trip: a local directory reads one at less cost than it lists. */
  private readonly listed: RecordedRefs | undefined;
  /** This daemon's name in the records of ingests its streams hold, and its reading of others'. */
  readonly holders: Holders;

  constructor(
    private readonly blobs: BlobStore,
    private readonly docs: Documents,
    private readonly memberships: Memberships,
    private readonly logger: Logger,
    /** @internal the listings' monotonic clock in milliseconds (tests move it) */
    clock?: () => number,
    holders?: Holders,
  ) {
    this.holders = holders ?? new Holders();
    this.listed = blobs.remote
      ? new RecordedRefs(
          (ns) => segmentsBelow(docs, docKeys.ingestsPrefix(ns)),
          (ns, ref) => {
            const prefix = docKeys.ingestsPrefix(ns);
            const segments = [docKeys.ingest(ns, ref).slice(prefix.length)];
            if (hasLegacyKey(ns, ref)) segments.push(docKeys.legacyIngest(ns, ref).slice(prefix.length));
            return segments;
          },
          (ns, err) => logger.warn({ err, ns }, "could not list a namespace's ingest records: small ingests look their refs up one by one"),
          clock,
        )
      : undefined;
  }

  async read(ns: string, ref: string): Promise<IngestRecord | undefined> {
    // both keys at once: an open waits for this look-up
    const [record, legacy] = await Promise.all([
      this.docs.read<IngestRecord>(docKeys.ingest(ns, ref)),
      hasLegacyKey(ns, ref) ? this.docs.read<IngestRecord>(docKeys.legacyIngest(ns, ref)) : undefined,
    ]);
    return record ?? legacy;
  }

  /**
   * As `read`, for an open that could not continue a recorded ingest anyway (a small one): asks
   * the bucket only where the namespace's listing, shared for a few seconds, shows the ref's key,
   * or where there is no such listing (see RecordedRefs for what that trades).
   */
  async readIfListed(ns: string, ref: string): Promise<IngestRecord | undefined> {
    if (this.listed && !this.listed.mayHave(ns, ref)) return undefined;
    return this.read(ns, ref);
  }

  private async removeKeys(ns: string, ref: string): Promise<void> {
    await this.docs.remove(docKeys.ingest(ns, ref));
    if (hasLegacyKey(ns, ref)) await this.docs.remove(docKeys.legacyIngest(ns, ref));
  }

  /**
   * Every ingest recorded for `ns`, in key order; with `wantedRef`, only those whose ref (as its
   * key names it) it takes are read: a namespace may hold thousands of records, and a filter
   * on the ref needs none of them read to rule them out. `fresh` reads each one from the bucket,
   * never from what a listing kept (see Documents.readAll): for the sweep, which drops by them.
   */
  async *all(ns: string, options: { wantedRef?: (ref: string) => boolean; fresh?: boolean } = {}): AsyncIterable<IngestRecord> {
    const { wantedRef, fresh } = options;
    const prefix = docKeys.ingestsPrefix(ns);
    const wanted = wantedRef && ((key: string) => refOfKey(key.slice(prefix.length), wantedRef));
    for await (const { value } of this.docs.readAll<IngestRecord>(prefix, { wanted, fresh })) yield value;
  }

  /**
   * Writes (or refreshes) the bucket's record of an ingest. Writes never overlap; requests
   * made meanwhile collapse into one more write of the latest state. A write that fails is
   * logged, and the answer is whether the record as it stood at the call landed.
   */
  async record(ingest: Ingest): Promise<boolean> {
    if (ingest.keyTaken || ingest.removing) return false;
    this.listed?.noteRecorded(ingest.ns, ingest.ref);
    // with the key in doubt, recorded once it is settled this ingest's
    if (!ingest.keyInDoubt && !ingest.bytesGone) ingest.recorded = true;
    ingest.rerecord = true;
    ingest.recording ??= (async () => {
      let landed = false;
      try {
        while (ingest.rerecord) {
          ingest.rerecord = false;
          try {
            await this.memberships.ensureNamespace(ingest.ns);
            // settled in the tick the write goes out in: a restart during a settling read brings a new doubt
            while (ingest.keyInDoubt) if (!(await this.settleKey(ingest))) return false;
            // bytes found gone are not recorded (a restart failed: the next message tries again)
            if (ingest.bytesGone || ingest.removing) {
              landed = false;
              continue;
            }
            ingest.recorded = true;
            const begun = performance.now();
            ingest.recordTriedAt = begun;
            try {
              await this.docs.write(docKeys.ingest(ingest.ns, ingest.ref), ingestRecord(ingest, this.holders));
              // the hold it names dates from when it was made
              ingest.recordWrittenAt = begun;
            } finally {
              // a listing begun while the write was on its way may not show it (nor one that
              // failed: its PUT may have landed all the same)
              this.listed?.noteRecorded(ingest.ns, ingest.ref);
            }
            landed = true;
          } catch (err) {
            landed = false;
            this.logger.warn({ err, ref: ingest.ref, ns: ingest.ns }, 'could not record an ingest');
          }
        }
      } finally {
        ingest.recording = undefined;
      }
      return landed;
    })();
    return ingest.recording;
  }

  /**
   * While a stream holds the ingest, its record is written again once HOLD_RENEW_MS has gone by
   * since the last write that landed (a client sending slowly, or not at all, moves no
   * checkpoint), a failed one tried again RENEW_RETRY_MS later, so other daemons keep seeing the
   * hold (Holders.heldElsewhere). Goes on while a stream that let go waits for its parts on the
   * way, and stops by itself once the ingest is put aside (or the stream committed).
   */
  renewWhileHeld(ingest: Ingest): void {
    clearInterval(ingest.holdRenewal);
    const timer = setInterval(() => {
      if (!heldByStream(ingest) || ingest.keyTaken) {
        clearInterval(timer);
        if (ingest.holdRenewal === timer) ingest.holdRenewal = undefined;
        return;
      }
      if (!ingest.recorded || ingest.removing || ingest.recording) return;
      const at = performance.now();
      if (at - (ingest.recordWrittenAt ?? -Infinity) < HOLD_RENEW_MS || at - (ingest.recordTriedAt ?? -Infinity) < RENEW_RETRY_MS) return;
      void this.record(ingest);
    }, RENEW_TICK_MS);
    timer.unref();
    ingest.holdRenewal = timer;
  }

  /** Removes the record of a live ingest, once the writes under way have landed; none due is written after. */
  async remove(ingest: Ingest): Promise<void> {
    clearTimeout(ingest.checkpointDue);
    ingest.checkpointDue = undefined;
    // a checkpoint reached meanwhile (the last part's) must not land after the removal
    ingest.removing = true;
    try {
      while (ingest.recording) await ingest.recording;
      const doubt = ingest.keyInDoubt;
      if (doubt && !(await this.settleKey(ingest))) return;
      if (!ingest.recorded && !doubt) return;
      await this.removeKeys(ingest.ns, ingest.ref);
      ingest.recorded = false;
    } finally {
      ingest.removing = false;
    }
  }

  /**
   * Whether the record's key, in doubt since a restart, is still this ingest's to write or
   * remove: nothing there, or a record of an upload this ingest had. A record of another upload
   * is the daemon's that took the ingest up; that daemon's client continues from it, and this
   * ingest, started over, leaves it alone for good (and, unrecorded, is not continued after a
   * crash: its client writes it again). A failed read throws, and the doubt stays.
   */
  private async settleKey(ingest: Ingest): Promise<boolean> {
    const doubt = ingest.keyInDoubt;
    const stored = await this.read(ingest.ns, ingest.ref);
    // an upload is the same whichever of its checkpoints a record names
    const current = ingest.upload.handle();
    const had = [...(doubt?.replaced ?? []), ...(current ? [current] : [])].map((h) => this.blobs.uploadIdentity(h));
    // a record another daemon wrote since is its, even one continuing the same upload in place;
    // one of an earlier version (naming no writer), or the one this ingest was taken up from (its
    // first write may not have landed), is told by its upload
    const by = stored?.writer;
    const ours =
      !stored ||
      by === this.holders.self.id ||
      ((by === undefined || by === ingest.tookUpFrom) && stored.upload !== undefined && had.includes(this.blobs.uploadIdentity(stored.upload)));
    if (ours) {
      // a restart meanwhile gave up another upload: that doubt stays for the next write or removal
      if (ingest.keyInDoubt === doubt) ingest.keyInDoubt = undefined;
      return true;
    }
    ingest.keyInDoubt = undefined;
    ingest.keyTaken = true;
    ingest.recorded = false;
    this.logger.info({ ns: ingest.ns, ref: ingest.ref }, 'an ingest started over leaves its record to the daemon that took it up, and is not recorded');
    return false;
  }

  /** Discards a recorded ingest no process holds: its stored bytes, then its record. */
  async drop(ns: string, record: IngestRecord): Promise<void> {
    if (record.upload) {
      await this.blobs.discardUpload(record.upload).catch((err: unknown) => {
        this.logger.warn({ err, ref: record.ref, ns }, 'could not discard the stored bytes of an old ingest');
      });
    }
    await this.removeKeys(ns, record.ref);
  }
}

async function* segmentsBelow(docs: Documents, prefix: string): AsyncIterable<string> {
  for await (const key of docs.list(prefix, { pageKeys: LISTING_PAGE_KEYS })) yield key.slice(prefix.length);
}

/** Whether the ref a record's key names is wanted; a key that names none is read to see. */
function refOfKey(segment: string, wantedRef: (ref: string) => boolean): boolean {
  let ref: string;
  try {
    // both key forms, encodeSegment's and the legacy one, decode to the ref
    ref = decodeURIComponent(segment);
  } catch {
    return true;
  }
  return wantedRef(ref);
}

function hasLegacyKey(ns: string, ref: string): boolean {
  // "." and ".." never had a working key of the old form
  return ref !== '.' && ref !== '..' && docKeys.legacyIngest(ns, ref) !== docKeys.ingest(ns, ref);
}

function ingestRecord(ingest: Ingest, holders: Holders): IngestRecord {
  const resumable = ingest.resumable;
  const handle = resumable?.checkpoint.handle ?? ingest.upload.handle();
  // a stream holds it: no other daemon may continue or drop it meanwhile (see Holders)
  const held = heldByStream(ingest);
  return {
    ref: ingest.ref,
    total: ingest.total,
    expected: ingest.expected,
    startedAt: ingest.startedAt.toISOString(),
    updatedAt: ingest.updatedAt.toISOString(),
    offset: resumable?.checkpoint.offset ?? 0,
    ...(handle ? { upload: handle } : {}),
    ...(resumable?.state
      ? { hash: { algorithm: ingest.hasher.algorithm, state: Buffer.from(resumable.state).toString('base64') } }
      : resumable
        ? { rehash: { algorithm: ingest.hasher.algorithm } }
        : {}),
    writer: holders.self.id,
    ...(held ? { heldBy: holders.self, heldAt: new Date().toISOString() } : {}),
  };
}

export function recordStatus(record: IngestRecord): IngestStatus {
  // Without a way to the hash the stored bytes cannot be continued, so a resume starts at 0.
  return {
    ref: record.ref,
    offset: record.hash || record.rehash ? record.offset : 0,
    total: record.total,
    expected: record.expected,
    startedAt: storedInstant(record.startedAt),
    updatedAt: storedInstant(record.updatedAt),
  };
}
