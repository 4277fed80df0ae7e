import type { Logger } from 'pino';
import type { BlobStore, Upload, UploadOptions } from '../blobstore/types.js';
import { ingestKey, type Ingest, type LiveIngests } from './ingest.js';
import type { IngestRecords } from './ingest-records.js';

/**
 * Checkpoints of ingests: the offsets up to which the bytes are stored for good and the hash
 * can be had again (from its saved state, or by reading those bytes back), so a crash can be
 * continued from there. Each one moves the ingest's record in the bucket on.
 */
export class Checkpoints {
  constructor(
    private readonly blobs: BlobStore,
    private readonly live: LiveIngests,
    private readonly records: IngestRecords,
    private readonly logger: Logger,
  ) {}

  /**
   * The moment some of an ingest's bytes are stored in the bucket it is recorded there, so a
   * crash of this daemon cannot leave an upload nobody knows about, and each checkpoint after
   * that moves the record on, so the ingest can be continued from it.
   */
  watchedUpload(ingest: Ingest, options: Omit<UploadOptions, 'onDurable'>): Upload {
    const upload: Upload = this.blobs.createUpload({
      ...options,
      onDurable: (checkpoint) => {
        if (ingest.upload !== upload || this.live.get(ingestKey(ingest.ns, ingest.ref)) !== ingest) return;
        ingest.durable = checkpoint;
        if (checkpoint.offset > 0 && ingest.resumeBy === 'rereading') ingest.resumable = { checkpoint };
        if (checkpoint.offset === 0 || ingest.resumeBy === 'rereading') void this.records.record(ingest);
        else this.advance(ingest);
      },
    });
    return upload;
  }

  /**
   * The ingest's bytes reached checkpoint offset `offset` (the hash's calls are applied in
   * order, so the state saved now is the state at that offset).
   */
  reachedOffset(ingest: Ingest, offset: number): void {
    const hasher = ingest.hasher;
    hasher.save().then(
      (state) => {
        if (!state || ingest.hasher !== hasher) return;
        ingest.states.set(offset, state);
        this.advance(ingest);
      },
      (err: unknown) => this.logger.warn({ err, ns: ingest.ns, ref: ingest.ref }, 'could not save the hash state of an ingest'),
    );
  }

  /** Records the latest checkpoint for which both the bytes are stored and the hash is known. */
  private advance(ingest: Ingest): void {
    const durable = ingest.durable;
    if (!durable || durable.offset <= (ingest.resumable?.checkpoint.offset ?? 0)) return;
    const state = ingest.states.get(durable.offset);
    if (!state) return;
    ingest.resumable = { checkpoint: durable, state };
    for (const offset of ingest.states.keys()) if (offset <= durable.offset) ingest.states.delete(offset);
    void this.records.record(ingest);
  }
}
