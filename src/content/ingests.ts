import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/types.js';
import { parseDigest } from '../digest.js';
import { ContentExists, invalidArgument, notFound } from '../errors.js';
import { validateNamespace } from '../namespaces/names.js';
import { Checkpoints } from './checkpoints.js';
import { RecordedIngests, type ReopenCopy } from './recorded-ingests.js';
import type { Claims } from './claims.js';
import { IngestStarts } from './ingest-starts.js';
import { IngestStatuses } from './ingest-statuses.js';
import { ingestKey, type Ingest, type LiveIngests } from './ingest.js';
import { ingestsToLetGo } from './ingest-shares.js';
import type { IngestRecord, IngestRecords } from './ingest-records.js';
import type { RefWork } from './ref-work.js';
import { lockedElsewhere, lockedError, refuseOtherTotal, untilUnlocked, validateRef } from './refs.js';
import { SuspendedHash, type SaveableHashes } from './running-hash.js';
import type { IngestStatus } from './types.js';
import { Writer, type WriterHost } from './writer.js';
import { now, storedInstant } from '../clock.js';

interface IngestsOptions {
  blobs: BlobStore;
  /** Shared with Updates, which claim the blobs they label too. */
  claims: Claims;
  records: IngestRecords;
  live: LiveIngests;
  /** Shared with the expiry sweep, which gives ingests up too. */
  refWork: RefWork;
  hashes: SaveableHashes;
  logger: Logger;
  crashResume: boolean;
}

/**
 * Ingests this process keeps in memory at most (each without a stream holds a few hundred bytes),
 * shared fairly between namespaces.
 */
const MAX_LIVE_INGESTS = 4096;
/**
 * An ingest declared smaller than this can continue no ingest recorded in the bucket: a record's
 * checkpoint lies at least one part in (S3's smallest part is 5 MiB), and one without a
 * checkpoint starts over anyway. So its open need not wait for the record's look-up, and the
 * look-up goes only where the namespace's listing shows the ref (see RecordedRefs).
 */
const NO_RESUME_BELOW = 5 * 1024 * 1024;

/**
 * Ingests from open to commit or abort: Status, ListStatuses, Abort, and the Write stream's
 * hold on a ref. An ingest lives in this process while written to, and in the bucket's records
 * once some of its bytes are stored there, so any daemon can list it, continue it or discard it.
 */
export class Ingests {
  private readonly blobs: BlobStore;
  private readonly claims: Claims;
  private readonly records: IngestRecords;
  private readonly live: LiveIngests;
  private readonly checkpoints: Checkpoints;
  private readonly recorded: RecordedIngests;
  private readonly starts: IngestStarts;
  private readonly statuses: IngestStatuses;
  private readonly hashes: SaveableHashes;
  private readonly logger: Logger;
  /** Opens and givings up of a ref under way, one at a time. */
  private readonly refWork: RefWork;
  /** All a Writer sees of this side. */
  private readonly writerHost: WriterHost = {
    failIfPresent: (ns, digest) => this.failIfPresent(ns, digest),
    claim: (ns, digest, request) => this.claims.commit(ns, digest, request),
    restartUpload: (ingest) => this.starts.startUpload(ingest),
    reachedCheckpoint: (ingest, offset) => this.checkpoints.reachedOffset(ingest, offset),
    finish: (ingest, outcome) => this.finish(ingest, outcome),
    removeRecord: (ingest) => this.records.remove(ingest),
    discard: (ingest) =>
      this.refWork.givingUp(ingestKey(ingest.ns, ingest.ref), async () => {
        await this.finish(ingest, 'done');
        await ingest.upload.abort();
        await this.records.remove(ingest).catch(() => undefined);
      }),
  };

  constructor(options: IngestsOptions) {
    this.blobs = options.blobs;
    this.claims = options.claims;
    this.records = options.records;
    this.live = options.live;
    this.hashes = options.hashes;
    this.logger = options.logger;
    this.refWork = options.refWork;
    this.checkpoints = new Checkpoints(options.blobs, options.live, options.records, options.logger);
    this.recorded = new RecordedIngests(options.blobs, options.hashes, this.checkpoints, options.records, options.logger);
    this.starts = new IngestStarts(this.checkpoints, options.hashes, options.crashResume);
    this.statuses = new IngestStatuses(options.live, options.records);
  }

  /** Whether any Write stream holds an ingest, or is putting one aside. */
  get anyHeld(): boolean {
    for (const ingest of this.live.values()) if (ingest.lockedSince) return true;
    return false;
  }

  status(ns: string, ref: string): Promise<IngestStatus> {
    return this.statuses.status(ns, ref);
  }

  listStatuses(ns: string, filters: readonly string[]): Promise<IngestStatus[]> {
    return this.statuses.list(ns, filters);
  }

  async abort(ns: string, ref: string): Promise<void> {
    validateNamespace(ns);
    if (ref === '') throw notFound('ingest "": not found');
    validateRef(ref);
    const key = ingestKey(ns, ref);
    // an open under way may be taking the recorded ingest up: its record and bytes are its own
    const lockedSince = () => this.refWork.since(key) ?? this.live.get(key)?.lockedSince;
    await untilUnlocked(ref, lockedSince);
    // checked again in the same turn as the lock is taken: another open may have come meanwhile
    const since = lockedSince();
    if (since) throw lockedError(ref, since);
    await this.refWork.givingUp(key, () => this.abortUnlocked(ns, ref, key));
  }

  private async abortUnlocked(ns: string, ref: string, key: string): Promise<void> {
    const kept = this.live.get(key);
    // a copy another daemon took the ingest up from since goes, and the Abort is of the record
    if (kept?.recorded && this.staleCopy(kept, await this.records.read(ns, ref)) && this.live.get(key) === kept) this.letGoOf(key, kept);
    const live = this.live.get(key);
    if (live) {
      // openWriter dropped any older record of this ref, so the live ingest knows its own
      this.live.delete(key);
      live.hasher.close();
      await live.upload.abort();
      await this.records.remove(live);
      return;
    }
    const record = await this.records.read(ns, ref);
    if (!record) throw notFound(`ingest ${JSON.stringify(ref)}: not found`);
    if (this.records.holders.heldElsewhere(record)) throw lockedElsewhere(ref, record);
    await this.records.drop(ns, record);
  }

  /**
   * Opens (or resumes) the ingest `ref` for one Write stream, holding its lock until the
   * writer is released. An expected digest that is already stored answers AlreadyExists,
   * after making the blob a member of this namespace (containerd's shared content policy).
   */
  async openWriter(ns: string, ref: string, total: number, expected: string, signal?: AbortSignal): Promise<Writer> {
    validateNamespace(ns);
    validateRef(ref);
    if (total < 0) throw invalidArgument(`ref ${JSON.stringify(ref)}: negative total ${total}`);
    const wanted = expected !== '' ? parseDigest(expected).value : undefined;
    const key = ingestKey(ns, ref);
    // one open of a ref at a time: a second one meanwhile would mostly be refused as locked once
    // the first holds the ref (containerd's clients retry that); one while the ref's ingest is
    // given up (an Abort, the expiry sweep) would take up what is on its way out
    const since = this.refWork.since(key);
    if (since) throw lockedError(ref, since);
    return this.refWork.open(key, () => this.open(ns, ref, key, total, expected, wanted, signal));
  }

  private async open(
    ns: string,
    ref: string,
    key: string,
    total: number,
    expected: string,
    wanted: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Writer> {
    // The existence check and the lookup of a record this ref may have left go to S3 together.
    // A small ingest continues no recorded one: its ref is looked up only where the namespace's
    // listing of records (shared for a few seconds) shows it.
    const small = total > 0 && total < NO_RESUME_BELOW;
    const present = this.live.get(key);
    // a recorded ingest this daemon let go of may have been taken up by another daemon since
    const reading = present
      ? present.recorded && !present.lockedSince
        ? this.records.read(ns, ref)
        : undefined
      : small
        ? this.records.readIfListed(ns, ref)
        : this.records.read(ns, ref);
    reading?.catch(() => undefined);
    if (wanted) await this.failIfPresent(ns, wanted);
    // a copy another daemon took the ingest up from since goes: that daemon holds it (the open is
    // refused as locked below) or let go, and the record is where the ingest stands
    const current = present && reading ? await reading : undefined;
    if (present && this.staleCopy(present, current) && this.live.get(key) === present) this.letGoOf(key, present);
    // nothing awaited from here to the lock: the ingest cannot be let go of meanwhile
    let ingest = this.live.get(key);
    let copy: ReopenCopy | undefined;
    /** Taken up from the record just read: the record is this open's to write now. */
    let takenUp = false;
    if (ingest?.lockedSince) throw lockedError(ref, ingest.lockedSince);
    if (ingest) refuseOtherTotal(ref, ingest.total, total);
    if (!ingest) {
      if (reading && !wanted && small) {
        // Nothing recorded can continue as this ingest: the client goes on sending while the
        // look-up runs, and its first part or its commit waits for it.
        ingest = await this.starts.newIngest(ns, ref, total, expected, now());
        ingest.leftover = this.settleLeftover(ns, ref, total, reading);
        ingest.leftover.catch(() => undefined);
      } else {
        // A record without a live ingest was left by an earlier run or another daemon: continued
        // from its checkpoint when it has one, else started over (the client sees offset 0).
        const stale = await (reading ?? this.records.read(ns, ref));
        // another daemon's stream writes it right now: as a second stream here would be, refused
        if (stale && this.records.holders.heldElsewhere(stale)) throw lockedElsewhere(ref, stale);
        if (stale) refuseOtherTotal(ref, stale.total, total);
        const resumed = stale ? await this.recorded.resume(ns, stale, signal) : undefined;
        if (stale && !resumed) await this.recorded.dropUnlessTaken(ns, stale);
        ingest = resumed?.ingest ?? (await this.starts.newIngest(ns, ref, total, expected, stale ? storedInstant(stale.startedAt) : now()));
        copy = resumed?.copy;
        takenUp = resumed !== undefined;
        if (resumed) ingest.tookUpFrom = stale?.writer;
      }
      const meanwhile = this.live.get(key);
      if (meanwhile) {
        // Another stream made or took the ref meanwhile (perhaps continuing this very upload):
        // its ingest stands, and only what this open made for its own is given up.
        ingest.hasher.close();
        if (copy) void this.blobs.discardUpload(copy.handle).catch(() => undefined);
        if (meanwhile.lockedSince) throw lockedError(ref, meanwhile.lockedSince);
        refuseOtherTotal(ref, meanwhile.total, total);
        ingest = meanwhile;
        copy = undefined;
        takenUp = false;
      } else {
        this.live.set(key, ingest);
      }
    }
    ingest.lockedSince = new Date();
    if (copy) {
      // The old checkpoint's bytes go only once the record names the new upload: until then
      // they are what the record continues from (the collector removes them otherwise).
      if (await this.records.record(ingest)) {
        void copy.tidy().catch((err: unknown) => this.logger.warn({ err, ns, ref }, 'could not remove the bytes an ingest was continued from'));
      }
    } else if (takenUp || (ingest === present && current !== undefined)) {
      // its record names this daemon's stream before the client sends on: another daemon reading
      // it meanwhile would take the same upload up (a kept copy's record was just read as its own)
      await this.records.record(ingest);
    }
    const suspended = ingest.hasher;
    if (suspended instanceof SuspendedHash) {
      try {
        const resumed = await suspended.resume(this.hashes);
        // a restart meanwhile gave the ingest a new hash: the one resumed is of gone bytes
        if (ingest.hasher === suspended) ingest.hasher = resumed;
        else resumed.close();
      } catch (err) {
        ingest.lockedSince = undefined;
        throw err;
      }
    }
    if (total > 0) ingest.total = total;
    // what Status shows: this stream's expectation, as in containerd
    ingest.expected = wanted ?? '';
    this.records.renewWhileHeld(ingest);
    return new Writer(this.writerHost, ingest, wanted ?? '');
  }

  /**
   * Whether a copy of a recorded ingest this daemon kept is stale, by its record as just read:
   * another daemon wrote the record since (records of earlier versions name no writer), so it
   * took the ingest up from there, and holds it or let go.
   */
  private staleCopy(copy: Ingest, current: IngestRecord | undefined): boolean {
    return copy.recorded && current !== undefined && current.writer !== this.records.holders.self.id;
  }

  private async failIfPresent(ns: string, digest: string): Promise<void> {
    const stat = await this.blobs.statBlob(digest);
    if (stat && (await this.claims.holdIfStays(ns, digest, stat))) throw new ContentExists(digest);
  }

  /**
   * The record an earlier ingest of the ref may have left, dealt with while the stream goes on:
   * one of another declared size refuses this ingest, as the open would have (Abort the ref to
   * start over); any other is discarded, as when the ingest starts over at offset 0, unless
   * another daemon took it up since it was read.
   */
  private async settleLeftover(ns: string, ref: string, total: number, reading: Promise<IngestRecord | undefined>): Promise<void> {
    const stale = await reading;
    // another daemon's stream writes it: its record and bytes are its own, and this ingest, one
    // PUT at its COMMIT, never records one of its own
    if (!stale || this.records.holders.heldElsewhere(stale)) return;
    refuseOtherTotal(ref, stale.total, total);
    await this.recorded.dropUnlessTaken(ns, stale);
  }

  /**
   * The stream lets go of the ingest, either for good ('done': it was committed or discarded)
   * or keeping it for a resume ('released').
   */
  private async finish(ingest: Ingest, outcome: 'done' | 'released'): Promise<void> {
    const key = ingestKey(ingest.ns, ingest.ref);
    if (outcome === 'done') {
      clearInterval(ingest.holdRenewal);
      ingest.holdRenewal = undefined;
      ingest.lockedSince = undefined;
      if (this.live.get(key) === ingest) this.live.delete(key);
      ingest.hasher.close();
      return;
    }
    // The ref stays locked until the ingest is put aside: a stream taking it over meanwhile
    // would write into a part that is on its way to disk.
    try {
      await this.putAside(ingest);
    } finally {
      ingest.puttingAside = false;
      ingest.lockedSince = undefined;
    }
    this.evictSuspended();
  }

  private async putAside(ingest: Ingest): Promise<void> {
    // Without a stream it holds no memory: its unfinished part goes to disk, its hash to a
    // saved state; a resume takes both back. Where the disk cannot take the part (full, or the
    // spill bound reached), the ingest is let go rather than left holding memory others need.
    // Parts on their way land first, while the record still names this daemon's hold (renewed):
    // another daemon taking the ingest up meanwhile would continue the upload they land in.
    const suspended = await ingest.upload.suspend().then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    // From here the record names no holder, and this daemon writes it only this once more (a
    // checkpoint still due included): another daemon may take the ingest up at once, and a write
    // of this one's landing after that one's would name the upload it left.
    ingest.puttingAside = true;
    clearInterval(ingest.holdRenewal);
    ingest.holdRenewal = undefined;
    clearTimeout(ingest.checkpointDue);
    ingest.checkpointDue = undefined;
    // Kept for a resume with the same ref. Once some of its bytes are stored in the bucket (a
    // multipart upload has begun) it is recorded there too, so other daemons list it and the
    // stored bytes can be found and discarded once abandoned; bytes only buffered here leave
    // nothing in the bucket.
    if ((ingest.offset > 0 && ingest.upload.handle() !== undefined) || ingest.recorded) await this.records.record(ingest);
    if (suspended) {
      this.letGoOf(ingestKey(ingest.ns, ingest.ref), ingest);
      this.logger.warn({ err: suspended.err, ns: ingest.ns, ref: ingest.ref, offset: ingest.offset }, 'could not put an interrupted ingest aside on disk: let go of it');
      return;
    }
    const hasher = ingest.hasher;
    const state = await hasher.save().catch(() => undefined);
    if (state && ingest.hasher === hasher) {
      hasher.close();
      ingest.hasher = new SuspendedHash(hasher.algorithm, state);
    }
  }

  /**
   * Past MAX_LIVE_INGESTS, ingests without a stream are let go from this process, the oldest of
   * the namespace holding the most (see ingest-shares.ts): one with bytes in the bucket continues
   * from its record's checkpoint (the client sees that offset), one without starts over.
   */
  private evictSuspended(): void {
    if (this.live.size <= MAX_LIVE_INGESTS) return;
    for (const ingest of ingestsToLetGo(this.live.values(), MAX_LIVE_INGESTS)) {
      this.letGoOf(ingestKey(ingest.ns, ingest.ref), ingest);
      this.logger.warn(
        { ns: ingest.ns, ref: ingest.ref, offset: ingest.offset },
        `more than ${MAX_LIVE_INGESTS} ingests held: let go of the oldest idle one of the namespace holding the most`,
      );
    }
  }

  /**
   * This process keeps nothing of the ingest: one with a record in the bucket continues from its
   * checkpoint (the client sees that offset), one without starts over.
   */
  private letGoOf(key: string, ingest: Ingest): void {
    if (this.live.get(key) === ingest) this.live.delete(key);
    ingest.hasher.close();
    void (ingest.recorded ? ingest.upload.forget() : ingest.upload.abort()).catch(() => undefined);
  }
}
