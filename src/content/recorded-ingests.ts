import type { Logger } from 'pino';
import type { BlobStore, Checkpoint, ReopenedCheckpoint, UploadHandle } from '../blobstore/types.js';
import { isStoreError } from '../errors.js';
import type { Checkpoints } from './checkpoints.js';
import type { Ingest } from './ingest.js';
import type { IngestRecord, IngestRecords } from './ingest-records.js';
import { newRunningHash, type RunningHash, type SaveableHashes } from './running-hash.js';
import { now, storedInstant } from '../clock.js';

/**
 * Taking up an ingest another process (or this one, before letting it go) recorded in the
 * bucket: from its saved hash state, or by reading its stored bytes back (reopen.ts).
 */
export class RecordedIngests {
  constructor(
    private readonly blobs: BlobStore,
    private readonly hashes: SaveableHashes,
    private readonly checkpoints: Checkpoints,
    private readonly records: IngestRecords,
    private readonly logger: Logger,
  ) {}

  /**
   * Continues an ingest another process recorded, from its checkpoint; undefined when it has none
   * or it cannot be continued. One recorded with its hash state goes on from that state; one
   * recorded for rereading has its stored bytes read back through a new hash, and continues in
   * the upload `copy` names when the store made a new one (recorded, and the old one tidied, once
   * the ingest is taken), else in the recorded one.
   */
  async resume(ns: string, record: IngestRecord, signal?: AbortSignal): Promise<{ ingest: Ingest; copy?: ReopenCopy } | undefined> {
    if (!(record.hash || record.rehash) || !record.upload || !(record.offset > 0)) return undefined;
    let hasher: RunningHash | undefined;
    try {
      const recorded: Checkpoint = { offset: record.offset, handle: record.upload };
      let state: Uint8Array | undefined;
      let reopened: ReopenedCheckpoint | undefined;
      if (record.hash) {
        state = Buffer.from(record.hash.state, 'base64');
        hasher = await this.hashes.open(record.hash.algorithm, state);
      } else {
        const rebuilt = newRunningHash(record.rehash!.algorithm);
        hasher = rebuilt;
        reopened = await this.blobs.reopenCheckpoint(recorded, (chunk) => void rebuilt.update(chunk), signal);
      }
      const checkpoint = reopened?.checkpoint ?? recorded;
      const ingest: Ingest = {
        ns,
        ref: record.ref,
        startedAt: storedInstant(record.startedAt),
        updatedAt: now(),
        total: record.total,
        expected: record.expected,
        offset: record.offset,
        hasher,
        upload: undefined as never,
        lockedSince: undefined,
        recorded: true,
        resumeBy: state ? 'state' : 'rereading',
        states: new Map(),
        durable: checkpoint,
        resumable: { checkpoint, state },
      };
      ingest.upload = this.checkpoints.watchedUpload(ingest, { sizeHint: record.total, resume: checkpoint });
      this.logger.info(
        { ns, ref: record.ref, offset: record.offset, by: state ? 'saved hash state' : 'stored bytes read back' },
        'continuing an ingest from its checkpoint',
      );
      // a store may continue the recorded upload in place (a directory's file): that one is never this open's to discard
      if (!reopened || sameHandle(checkpoint.handle, recorded.handle)) return { ingest };
      const tidy = reopened.tidy;
      return { ingest, copy: { handle: checkpoint.handle, tidy: () => tidy() } };
    } catch (err) {
      // a saveable hash holds a worker's ring until closed
      hasher?.close();
      // S3 away, or the client: the open fails, and the record stays to be continued
      if (isStoreError(err, 'unavailable') || isStoreError(err, 'cancelled')) throw err;
      this.logger.warn({ err, ns, ref: record.ref }, 'an ingest record cannot be continued; the ingest starts over');
      return undefined;
    }
  }

  /**
   * Discards a record that could not be continued, unless another daemon continued it meanwhile
   * (continuing one read back names a new upload): that one's record and upload stay its own.
   */
  async dropUnlessTaken(ns: string, stale: IngestRecord): Promise<void> {
    const current = stale.rehash ? await this.records.read(ns, stale.ref) : stale;
    if (!current || this.records.holders.heldElsewhere(current)) return;
    if (sameHandle(current.upload, stale.upload)) await this.records.drop(ns, current);
  }
}

/** The new upload an ingest continued by reading its stored bytes back goes on in, and how to remove the old checkpoint's bytes. */
export interface ReopenCopy {
  handle: UploadHandle;
  tidy(): Promise<void>;
}

function sameHandle(a: UploadHandle | undefined, b: UploadHandle | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
