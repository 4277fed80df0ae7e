/**
 * The claims of each (namespace, blob) this process has under way, so that one claim giving
 * back the hold it wrote never removes the hold of another that is storing the same bytes, or
 * has held them: both write the one hold document, and a look-up of the bytes cannot see a
 * store still on its way. Across daemons that window stays (see claims.ts); within one, where a
 * fleet's builders meet on the same base layers, it is closed.
 */
export class ClaimsInFlight {
  /**
   * Per key: how many claims are under way, and whether two were at once since the last time
   * none was. A claim under way while that is so ran beside another: one that began while
   * others ran did, and any other began while it ran.
   */
  private readonly running = new Map<string, { count: number; together: boolean }>();
  private readonly takingBack = new Map<string, Promise<unknown>>();
  /** Take-backs declined while other claims of the key ran: the last of them to end does it. */
  private readonly owed = new Map<string, () => Promise<void>>();

  /** Counts a claim of `key` as under way until the returned function is called. */
  begin(key: string): () => void {
    const claims = this.running.get(key) ?? { count: 0, together: false };
    if (claims.count > 0) claims.together = true;
    claims.count++;
    this.running.set(key, claims);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--claims.count > 0) return;
      this.running.delete(key);
      // every claim that declined to take the hold back failed or went on: the hold goes unless
      // the bytes are stored by now (an owed take-back asks the bucket first)
      const remove = this.owed.get(key);
      this.owed.delete(key);
      if (remove) void this.takeBack(key, remove, remove).catch(() => undefined);
    };
  }

  /**
   * Before a claim of `key` reads or writes its hold: a take-back under way finishes first, so
   * the claim neither counts on a hold about to go nor writes one that removal would take.
   */
  settled(key: string): Promise<unknown> | undefined {
    return this.takingBack.get(key);
  }

  /**
   * Runs `remove` (the take-back of a hold the calling claim wrote) unless another claim of `key`
   * was under way beside it, which may have written the same hold and stored or held its bytes,
   * even one that has ended since (it answered on that hold). Then `owed`, which asks the bucket
   * whether the bytes are stored before it removes anything, runs once the last claim of `key`
   * has ended instead.
   */
  async takeBack(key: string, remove: () => Promise<void>, owed: () => Promise<void>): Promise<void> {
    if (this.takingBack.has(key)) return;
    if (this.running.get(key)?.together) {
      this.owed.set(key, owed);
      return;
    }
    const removing = remove();
    this.takingBack.set(key, removing.catch(() => undefined));
    try {
      await removing;
    } finally {
      this.takingBack.delete(key);
    }
  }
}
