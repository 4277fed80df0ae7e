import { docKeys, type Documents } from './documents.js';

/**
 * The collector's notes on a blob it found unreferenced, in the bucket so that every daemon
 * and every collector sharing it reads the same ones. S3 gives no compare-and-swap we may rely
 * on, so the collector and the writers keep to an order instead:
 *
 * - a writer about to answer AlreadyExists (or to label a stored blob) first writes its hold,
 *   then reads the mark;
 * - the collector, right before deleting, first writes `finalAt` into the mark, then checks
 *   the holds once more, then deletes, then writes `deletedAt`.
 *
 * So a writer that sees no `finalAt` wrote its hold before the collector's last check, which
 * will see it and keep the blob; one that sees a recent `finalAt` waits until the deletion is
 * done or given up; one that sees `deletedAt` knows the bytes are gone whatever its caches say.
 */
export interface ReclaimMark {
  /** When a collector first found the blob unreferenced. */
  since: string;
  /** When a collector began its last check before deleting; it gives up after FINAL_WINDOW_MS. */
  finalAt?: string;
  /** When the bytes were deleted (kept for a while, so stale caches of other daemons learn it). */
  deletedAt?: string;
}

/** The longest a collector may take from its last check to the delete; past it, it gives up. */
export const FINAL_WINDOW_MS = 5_000;
/**
 * What writers add to the window, by their own clocks: the 20 s two machines' clocks may
 * disagree by (see README), the 10 s a collector waits before it asks whether a delete cut off
 * at the window's end landed (deletes.ts), and as much again for that question and its note.
 */
const CLOCK_SLACK_MS = 60_000;
/**
 * The longest a writer waits for one note's outcome, by its own monotonic clock from when it
 * first saw the note final: the note was written before that, so the outcome is due within the
 * window and the settling after it, whatever the clocks say (a collector whose clock runs far
 * ahead, then stops, would otherwise hold writers until their clocks caught up).
 */
export const FINAL_WAIT_MS = 35_000;

export class ReclaimMarks {
  constructor(private readonly docs: Documents) {}

  read(digest: string): Promise<ReclaimMark | undefined> {
    return this.docs.read<ReclaimMark>(docKeys.reclaim(digest));
  }

  write(digest: string, mark: ReclaimMark): Promise<void> {
    return this.docs.write(docKeys.reclaim(digest), mark);
  }

  remove(digest: string): Promise<void> {
    return this.docs.remove(docKeys.reclaim(digest));
  }

  /** Every mark, with its digest, in digest order; `signal` stops the reading (CANCELLED). */
  async *all(signal?: AbortSignal): AsyncIterable<{ digest: string; mark: ReclaimMark }> {
    const prefix = docKeys.reclaimPrefix();
    // read, never remembered: a collector deletes by what its note says
    for await (const { key, value } of this.docs.readAll<ReclaimMark>(prefix, { fresh: true, signal })) yield { digest: key.slice(prefix.length), mark: value };
  }
}

/** Whether a collector may be between its last check and its delete of the blob right now. */
export function inFinalWindow(mark: ReclaimMark, now = Date.now()): boolean {
  if (mark.deletedAt || !mark.finalAt) return false;
  // with slack for the clocks of two machines that disagree
  return now - new Date(mark.finalAt).getTime() < FINAL_WINDOW_MS + CLOCK_SLACK_MS;
}
