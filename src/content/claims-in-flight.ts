/**
 * The claims of each (namespace, blob) this process has under way, so that one claim giving
 * back the hold it wrote never removes the hold of another that is still storing the same
 * bytes: both write the one hold document, and a look-up of the bytes cannot see a store still
 * on its way. Across daemons that window stays (see claims.ts); within one, where a fleet's
 * builders meet on the same base layers, it is closed.
 */
export class ClaimsInFlight {
  private readonly running = new Map<string, number>();
  private readonly takingBack = new Map<string, Promise<unknown>>();

  /** Counts a claim of `key` as under way until the returned function is called. */
  begin(key: string): () => void {
    this.running.set(key, (this.running.get(key) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else this.running.delete(key);
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
   * is under way, which may have written the same hold and be storing its bytes; such a claim
   * takes the hold back itself should its own bytes fail. Resolves whether `remove` ran.
   */
  async takeBack(key: string, remove: () => Promise<void>): Promise<boolean> {
    if ((this.running.get(key) ?? 0) > 1 || this.takingBack.has(key)) return false;
    const removing = remove();
    this.takingBack.set(key, removing.catch(() => undefined));
    try {
      await removing;
      return true;
    } finally {
      this.takingBack.delete(key);
    }
  }
}
