import type { BlobStore } from '../blobstore/types.js';
import { FINAL_WAIT_MS, inFinalWindow, type ReclaimMarks } from './reclaim-marks.js';

/** How often a writer looks again at a mark whose collector is deleting right now. */
const POLL_MS = 200;

/**
 * The writers' half of the protocol with the collector (see reclaim-marks.ts): called after a
 * reference to a stored blob (a namespace's hold, a cache record, a lease resource) has been
 * written, it tells whether the bytes stay. They stay unless a collector deleted them, or is
 * deleting them right now and does; then the caller takes its reference back (or, in a Write,
 * has the client send the bytes after all), and no reference is left pointing at nothing.
 */
export class ReclaimGuard {
  constructor(
    private readonly marks: ReclaimMarks,
    private readonly blobs: BlobStore,
    /** FINAL_WAIT_MS (tests shorten it). */
    private readonly waitMs = FINAL_WAIT_MS,
  ) {}

  async stays(digest: string): Promise<boolean> {
    let mark = await this.marks.read(digest);
    const seen = performance.now();
    while (mark && inFinalWindow(mark) && performance.now() - seen < this.waitMs) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      mark = await this.marks.read(digest);
    }
    // No mark, or one whose collector has not begun (or gave up) its last check: that check,
    // when it comes, sees the reference written before this read.
    if (!mark?.deletedAt && !mark?.finalAt) return true;
    // A last check whose outcome never came (a collector stopped mid-batch), or bytes deleted once (they may have been stored
    // again since, and caches may not know either way): the bucket says.
    return (await this.blobs.statBlob(digest, { fresh: true })) !== undefined;
  }
}
