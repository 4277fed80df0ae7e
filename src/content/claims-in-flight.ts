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
   * Counts a claim of `key` as under way until its `end` is called, told whether the claim
   * answered on the hold (a COMMIT's OK or AlreadyExists, an Update's labels): one that did keeps
   * the hold from any take-back but one that finds the bytes missing. `since` marks when it
   * began, for a take-back it asks for (see takeBack).
   */
  begin(key: string): { since: number; end(answered: boolean): void } {
    const run = this.running.get(key) ?? { count: 0, together: false, ticks: 0, answeredAt: 0 };
    if (run.count > 0) run.together = true;
    run.count++;
    this.running.set(key, run);
    const since = ++run.ticks;
    let ended = false;
    const end = (answered: boolean) => {
      if (ended) return;
      ended = true;
      const at = ++run.ticks;
      if (answered) run.answeredAt = at;
      if (--run.count > 0) return;
      this.running.delete(key);
      // every claim that declined to take the hold back failed or went on: where a claim that
      // answered on the hold ran beside one of them (it ended after that one began) it goes only
      // if the bytes are not stored by now; where none did, as the claims alone would have had it
      // go (an error answered leaves no hold behind). An answer that ended before they began was
      // given on a hold that may have been deleted since, and stands for nothing now.
      const owed = run.owed;
      if (owed) void this.takeBack(key, owed.remove, owed.checked || run.answeredAt > owed.since).catch(() => undefined);
    };
    return { since, end };
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
   * `key` has ended instead, checked where one that answered on the hold ended after the asking
   * claim began (`since`, from its begin).
   */
  async takeBack(key: string, remove: RemoveHold, checked: boolean, since = 0): Promise<void> {
    if (this.takingBack.has(key)) return;
    const run = this.running.get(key);
    if (run?.together) {
      // unchecked if any claim would have it so: a claim that found the bytes not to stay (or
      // could not tell) takes its hold back whatever the bucket holds
      run.owed = { remove, checked: checked && (run.owed?.checked ?? true), since: Math.min(since, run.owed?.since ?? since) };
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
  /** Counts each begin and end of a claim of the run, in order. */
  ticks: number;
  /** When the last claim of the run that answered on the hold ended (0: none has). */
  answeredAt: number;
  /**
   * A take-back declined while others ran: the last of them to end does it. `since`: when the
   * earliest claim asking for it began.
   */
  owed?: { remove: RemoveHold; checked: boolean; since: number };
}
