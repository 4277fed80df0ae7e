/** Something holding part of a budget for bytes its client may or may not go on with. */
export interface BudgetHolder {
  /** performance.now() since which nothing has used what it holds; 0 while in use. */
  readonly idleSince: number;
  /** Bytes of the budget it holds. */
  readonly holding: number;
  /**
   * Puts what it holds aside (to disk) and releases that budget. False when it does not (it cannot
   * now, or could not lately), so that others are asked in its place.
   */
  giveBack(): boolean;
}

/**
 * The holders of a budget, of which those idle give way while others wait for it. A stream that
 * sent half a part and then went quiet (a client keeping its Write open with a STAT now and
 * then) held its buffer until --stream-idle-timeout: 32 of them held all of --max-buffer, and
 * every other client's WRITE waited 60 s and failed. Idle holders give back only while someone
 * waits, so an ingest that pauses costs nothing when memory is free: the longest idle first,
 * until what they held covers what is waited for; checked again while anyone still waits.
 */
export class IdleHolders {
  private readonly holders = new Set<BudgetHolder>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    /** How long a holder must have been idle to be asked. */
    readonly idleMs: number,
    /** Bytes waited for now. */
    private readonly waitedFor: () => number,
    /** The clock holders' `idleSince` reads (performance.now()). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(holder: BudgetHolder): void {
    this.holders.add(holder);
  }

  delete(holder: BudgetHolder): void {
    this.holders.delete(holder);
  }

  /** Whether it asks again every so often (only while someone waits). */
  get sweeping(): boolean {
    return this.sweeper !== undefined;
  }

  /** Someone had to wait for the budget. */
  short(): void {
    this.askIdle();
    if (this.waitedFor() > 0 && !this.sweeper) {
      this.sweeper = setInterval(() => this.askIdle(), Math.max(50, this.idleMs / 4));
      this.sweeper.unref();
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private askIdle(): void {
    const wanted = this.waitedFor();
    if (wanted <= 0) return this.close();
    const before = this.now() - this.idleMs;
    const idle = [...this.holders].filter((h) => h.idleSince > 0 && h.idleSince <= before && h.holding > 0).sort((a, b) => a.idleSince - b.idleSince);
    let given = 0;
    for (const holder of idle) {
      if (given >= wanted) break;
      // Counted as it is asked (a part it had on disk already is let go of at once). It leaves
      // the set as it releases; one that cannot stays, and is asked again next time.
      const holding = holder.holding;
      if (holder.giveBack()) given += holding;
    }
  }
}
