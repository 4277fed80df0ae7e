import { FINAL_WINDOW_MS } from '../metadata/reclaim-marks.js';

/** The first batch, and the fewest a batch holds. */
export const FIRST_BATCH = 50;
/** The most a batch holds: its notes, HEADs and DELETEs alone take about 2 s at 30 ms a request. */
export const MAX_BATCH = 400;

/**
 * The size of the collector's next final batch, from how the last one went. Its last check costs
 * about the same whatever the batch holds (listings of holds, lease resources and records), and
 * under shared prefixes that is most of the window; so batches that end well inside the window
 * grow, and a collection repeats that check less often. One that came near the window's end, or
 * gave way (too slow a check, deletes cut off), shrinks: it then leaves its blobs for a later run.
 */
export function nextBatchSize(size: number, elapsedMs: number, gaveWay: boolean, windowMs = FINAL_WINDOW_MS): number {
  if (gaveWay || elapsedMs > 0.7 * windowMs) return Math.max(FIRST_BATCH, Math.floor(size / 2));
  if (elapsedMs < 0.4 * windowMs) return Math.min(MAX_BATCH, size * 2);
  return size;
}
