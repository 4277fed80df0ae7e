import pMap from 'p-map';
import type { Logger } from 'pino';
import type { BlobEntry, BlobStore } from '../blobstore/types.js';
import { isStoreError } from '../errors.js';

/**
 * A DELETE cut off at its deadline may already be with S3, which can carry it out after the
 * client gave up. Asked at once, the bucket would still show the blob, the note would say it
 * stays, and writers would go on trusting bytes about to go. It is asked this much later, the
 * note still final meanwhile, so writers keep waiting (FINAL_WINDOW_MS and a slack of 60 s from
 * its start by their clocks, at most 35 s from first seeing it; past that they ask the bucket
 * themselves, see ReclaimGuard). S3 promises no bound:
 * this makes a late landing unlikely, not impossible.
 */
const DELETE_SETTLE_MS = 10_000;

export interface DeleteOutcome {
  /** Deleted by this call. */
  deleted: BlobEntry[];
  /** Not deleted in time, or refused: kept for a later run. */
  kept: BlobEntry[];
  /** Not stored any more, whether this call's delete said so or the bucket after it failed. */
  gone: BlobEntry[];
  /** Not deleted: the bucket, asked right before, showed it modified since (or could not tell). */
  spared: BlobEntry[];
}

/**
 * A final batch's deletes, none landing after `deadline` unless S3 carries out one cut off. Each
 * blob is asked about (`stillDoomed`, a fresh HEAD) right before its own DELETE, not with the
 * whole batch first: BuildKit's exporter touches (self-copies) an old blob it is about to name,
 * and a touch landing between the two is then a round trip wide, not a batch's. Once `signal`
 * aborts (the run told to stop), or the deadline has passed, no further blob is asked about or
 * deleted: those are kept.
 */
export async function deleteWithin(
  blobs: BlobStore,
  doomed: BlobEntry[],
  deadline: number,
  logger: Logger,
  stillDoomed: (blob: BlobEntry) => Promise<boolean>,
  options: { settleMs?: number | undefined; signal?: AbortSignal | undefined } = {},
): Promise<DeleteOutcome> {
  const { settleMs = DELETE_SETTLE_MS, signal } = options;
  const outcome: DeleteOutcome = { deleted: [], kept: [], gone: [], spared: [] };
  await pMap(
    doomed,
    async (blob) => {
      // past the deadline (a batch too large for a slow S3) the rest is kept unasked: a DELETE
      // could not be sent anyway, and each would cost a HEAD, a stat and a warning
      if (signal?.aborted || Date.now() >= deadline) {
        outcome.kept.push(blob);
        return;
      }
      if (!(await stillDoomed(blob).catch(() => false))) {
        outcome.spared.push(blob);
        return;
      }
      if (signal?.aborted) {
        outcome.kept.push(blob);
        return;
      }
      try {
        await blobs.deleteBlob(blob.digest, { deadline });
        outcome.deleted.push(blob);
        outcome.gone.push(blob);
      } catch (err) {
        // One cut off or unanswered after it was sent may still land: the bucket says which,
        // once it has had the time to. One S3 answered with a refusal will not.
        const settled = deadline + settleMs - Date.now();
        if (settled > 0 && !refusedByS3(err)) await new Promise((resolve) => setTimeout(resolve, settled));
        const there = await blobs.statBlob(blob.digest, { fresh: true }).catch(() => undefined);
        if (!there) outcome.gone.push(blob);
        outcome.kept.push(blob);
        logger.warn({ err, digest: blob.digest }, 'collector: delete not done in its window');
      }
    },
    { concurrency: 16 },
  );
  return outcome;
}

/** S3 answered the delete with a refusal (access, a lock, a missing bucket): nothing is on its way. */
function refusedByS3(err: unknown): boolean {
  return isStoreError(err) && ['permission-denied', 'failed-precondition', 'invalid-argument', 'not-found'].includes(err.kind);
}
