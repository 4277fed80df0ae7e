/**
 * The claims of each (namespace, blob) this process has under way, so that one claim giving
 * back the hold it wrote never removes the hold of another that is storing the same bytes, or
 * has held them: both write the one hold document, and a look-up of the bytes cannot see a
 * store still on its way. Across daemons that window stays (see claims.ts); within one, where a
 * fleet's builders meet on the same base layers, it is closed.
 */
export class ClaimsInFlight {
  /** Per key, the claims since the last time none was under way. */
  private readonly running = new Map<string, Run>();
  private readonly takingBack = new Map<string, Promise<unknown>>();

  /**
   * Counts a claim of `key` as under way until the returned function is called. A take-back
   * owed at the run's end is always checked: a claim of the run may have answered on the hold,
   * and another daemon may have stored the bytes again and written the same hold meanwhile, which
   * no count here sees; bytes that are gone still take the hold with them.
   */
  begin(key: string): () => void {
    const run = this.running.get(key) ?? { count: 0, together: false };
    if (run.count > 0) run.together = true;
    run.count++;
    this.running.set(key, run);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--run.count > 0) return;
      this.running.delete(key);
      if (run.owed) void this.takeBack(key, run.owed, true).catch(() => undefined);
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
   * Runs `remove` (the take-back of a hold the calling claim wrote; `checked`, asking the bucket
   * whether the bytes are stored before it removes anything) unless another claim of `key` was
   * under way beside it, which may have written the same hold and stored or held its bytes, even
   * one that has ended since (it answered on that hold). Then it runs once the last claim of
   * `key` has ended instead, checked (see begin).
   */
  async takeBack(key: string, remove: RemoveHold, checked: boolean): Promise<void> {
    if (this.takingBack.has(key)) return;
    const run = this.running.get(key);
    if (run?.together) {
      run.owed = remove;
      return;
    }
    const removing = remove(checked);
    this.takingBack.set(key, removing.catch(() => undefined));
    try {
      await removing;
    } finally {
      this.takingBack.delete(key);
    }
  }
}

/** Removes a claim's hold; `checked`: only if the bucket says the bytes are not stored. */
export type RemoveHold = (checked: boolean) => Promise<void>;

interface Run {
  count: number;
  /**
   * Two were under way at once since the last time none was. A claim under way while that is so
   * ran beside another: one that began while others ran did, and any other began while it ran.
   */
  together: boolean;
  /** A take-back declined while others ran: the last of them to end does it. */
  owed?: RemoveHold;
}
