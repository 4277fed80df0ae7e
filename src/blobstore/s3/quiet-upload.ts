import type { BudgetHolder } from '../idle-holders.js';
import type { FillingPart } from './filling-part.js';

/** How long an upload whose part could not go to disk is not asked again. */
const RETRY_AFTER_FAILURE_MS = 30_000;

/**
 * When an upload's stream is quiet, and what its part being filled may give back meanwhile.
 * Others waiting for --max-buffer while the stream sends nothing: the part goes to disk as a
 * suspended ingest's does, and comes back (waiting its turn) with the stream's next byte.
 */
export class QuietUpload implements BudgetHolder {
  /** Calls under way that use the part being filled; none while its stream sends nothing. */
  private working = 0;
  private quietSince = performance.now();
  private givingBack: Promise<void> | undefined;
  private failedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly filling: FillingPart,
    /** Parts S3 refused, held in memory until sent again: they go to disk as well. */
    private readonly refused: { held(): number; spill(): Promise<void> },
    private readonly ended: () => boolean,
  ) {}

  get idleSince(): number {
    return this.working > 0 ? 0 : this.quietSince;
  }

  get holding(): number {
    return this.filling.held + this.refused.held();
  }

  giveBack(): boolean {
    if (this.givingBack) return true;
    if (this.working > 0 || this.ended() || performance.now() - this.failedAt < RETRY_AFTER_FAILURE_MS) return false;
    this.givingBack = this.filling
      .spill()
      .then(() => this.refused.spill())
      .catch(() => {
        // no room on disk (or none that takes a whole part): it keeps its part, and others are
        // asked in its place until a while has passed
        this.failedAt = performance.now();
      })
      .finally(() => (this.givingBack = undefined));
    return true;
  }

  /** Runs `work`, which uses the part being filled, once any giving back is done; nothing is given back under it. */
  async using<T>(work: () => Promise<T>): Promise<T> {
    this.working++;
    try {
      await this.givingBack;
      return await work();
    } finally {
      if (--this.working === 0) this.quietSince = performance.now();
    }
  }
}
