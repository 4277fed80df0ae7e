import type { ByteBudget } from '../budget.js';
import type { PartBuffers } from '../part-buffers.js';
import type { SpillDir } from '../spill.js';
import type { BlobStat } from '../types.js';
import type { S3Bucket } from './client.js';
import type { KeyLayout } from './keys.js';

/** What uploads share with the store that creates them. */
export interface UploadContext {
  readonly s3: S3Bucket;
  readonly keys: KeyLayout;
  /** Bytes all uploads together may buffer; of its holders, uploads whose stream went quiet give way to those waiting. */
  readonly budget: ByteBudget;
  readonly parts: PartBuffers;
  /** Where the unfinished part of a suspended upload waits. */
  readonly spill: SpillDir;
  /** Size of the parts of new uploads (continued ones keep their checkpoint's). */
  readonly partSize: number;
  /** Parts of one upload in flight at once. */
  readonly uploadParallelism: number;
  /**
   * Upload ids of the copies reopens are filling (reopen.ts): no record names one until its
   * reopen returns, however long reading its checkpoint back takes, so the sweep must not take
   * it for one nobody owns.
   */
  readonly reopening: Set<string>;
  /** An upload just stored this blob. */
  remember(digest: string, stat: BlobStat): void;
}

/** A part on its way to S3. */
export interface OutgoingPart {
  partNumber: number;
  body: Buffer;
  /** The pooled buffer `body` sits in, handed back once S3 has stored the part. */
  buffer: Buffer;
  /** Budget bytes the part holds until then. */
  reservation: number;
}
