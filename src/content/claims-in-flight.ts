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
  /** Take-backs declined while other claims of the key ran: the last of them to end does it. */
  private readonly owed = new Map<string, () => Promise<void>>();

  /** Counts a claim of `key` as under way until the returned function is called. */
  begin(key: string): () => void {
    this.running.set(key, (this.running.get(key) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) return void this.running.set(key, left);
      this.running.delete(key);
      // every claim that declined to take the hold back failed or went on: the hold goes unless
      // the bytes are stored by now (`remove` asks the bucket first)
      const remove = this.owed.get(key);
      this.owed.delete(key);
      if (remove) void this.takeBack(key, remove).catch(() => undefined);
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
   * is under way, which may have written the same hold and be storing its bytes. With `owed`
   * (for a `remove` that asks the bucket whether the bytes are stored before it removes anything)
   * it runs once the last claim of `key` has ended instead.
   */
  async takeBack(key: string, remove: () => Promise<void>, options: { owed?: boolean } = {}): Promise<void> {
    if (this.takingBack.has(key)) return;
    if ((this.running.get(key) ?? 0) > 1) {
      if (options.owed) this.owed.set(key, remove);
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
