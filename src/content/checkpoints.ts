import type { Logger } from 'pino';
import type { BlobStore, Upload, UploadOptions } from '../blobstore/types.js';
import { heldByStream, ingestKey, type Ingest, type LiveIngests } from './ingest.js';
import type { IngestRecords } from './ingest-records.js';

/**
 * Checkpoints move an ingest's record on at most once per this long. Parts land every few tens
 * of milliseconds on a fast link: a record write per part was a PUT per 8 MiB, under one prefix
 * for every ingest of a namespace (S3 throttles a prefix past a few thousand writes a second),
 * and about a tenth of the S3 server's work in an ingest. A crash then costs at most this much
 * more of the upload to send again; a stream that goes away records its latest state once its
 * parts on the way have landed.
 */
export const CHECKPOINT_SPACING_MS = 1_000;

/**
 * Checkpoints of ingests: the offsets up to which the bytes are stored for good and the hash
 * can be had again (from its saved state, or by reading those bytes back), so a crash can be
 * continued from there. They move the ingest's record in the bucket on, spaced out.
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
        if (ingest.upload !== upload || ingest.bytesGone || this.live.get(ingestKey(ingest.ns, ingest.ref)) !== ingest) return;
        ingest.durable = checkpoint;
        if (checkpoint.offset > 0 && ingest.resumeBy === 'rereading') ingest.resumable = { checkpoint };
        if (checkpoint.offset === 0) {
          // the first one at once: from then on no crash can leave an upload nobody knows about
          // (not once the record names no holder: see recordSpaced)
          if (heldByStream(ingest)) void this.records.record(ingest);
        } else if (ingest.resumeBy === 'rereading') this.recordSpaced(ingest);
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
    // its bytes were found gone: what it saved of them continues nothing (see Writer.restart)
    if (ingest.bytesGone) return;
    const durable = ingest.durable;
    if (!durable || durable.offset <= (ingest.resumable?.checkpoint.offset ?? 0)) return;
    const state = ingest.states.get(durable.offset);
    if (!state) return;
    ingest.resumable = { checkpoint: durable, state };
    for (const offset of ingest.states.keys()) if (offset <= durable.offset) ingest.states.delete(offset);
    this.recordSpaced(ingest);
  }

  /**
   * Moves the record on now, or once CHECKPOINT_SPACING_MS has passed since it last moved (with
   * whatever is latest by then). Removing the record (records.remove) cancels what is due, and so
   * does the stream letting go (the record it then writes is the latest).
   */
  private recordSpaced(ingest: Ingest): void {
    if (ingest.checkpointDue) return;
    const wait = (ingest.checkpointRecordedAt ?? -Infinity) + CHECKPOINT_SPACING_MS - performance.now();
    const write = () => {
      ingest.checkpointDue = undefined;
      // Once the record names no holder (Ingests.putAside), another daemon may take the ingest up
      // and write it: a write of this one's landing after that would name the upload it left.
      if (ingest.bytesGone || !heldByStream(ingest) || this.live.get(ingestKey(ingest.ns, ingest.ref)) !== ingest) return;
      ingest.checkpointRecordedAt = performance.now();
      void this.records.record(ingest);
    };
    if (wait <= 0) return write();
    ingest.checkpointDue = setTimeout(write, wait);
    ingest.checkpointDue.unref();
  }
}
