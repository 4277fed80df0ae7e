/**
 * Take-backs put off until a collector that may be deleting the blob has surely done so: a
 * claim that could not read the collector's note cannot tell whether its hold came too late for
 * a collector's last check (the bytes go, and the hold must too) or whether another daemon's
 * writer wrote the same hold and answered AlreadyExists on it (the hold must stay). Once a
 * writer's longest wait for a note's outcome has passed, the bucket tells: bytes still stored
 * were not deleted under this hold. Bounded, so that S3 away for a while cannot pile up timers:
 * past the bound a take-back runs at once, and where it cannot tell, the hold stays (harmless:
 * one naming missing bytes is answered NotFound and dropped by the collector later).
 */
export class LateTakeBacks {
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly waitMs: number,
    private readonly limit: number,
  ) {}

  /** Runs `takeBack` for `key` once `waitMs` has passed (one a key: a later one replaces it). */
  put(key: string, takeBack: () => Promise<void>): void {
    // the later window covers the earlier one: both would take back the same hold
    this.cancel(key);
    if (this.pending.size >= this.limit) {
      void takeBack().catch(() => undefined);
      return;
    }
    const timer = setTimeout(() => {
      this.pending.delete(key);
      void takeBack().catch(() => undefined);
    }, this.waitMs);
    // a stopping daemon leaves the hold, as a crash would
    timer.unref();
    this.pending.set(key, timer);
  }

  /** A claim of `key` answered on the hold: it stands for it now, and no take-back is owed. */
  cancel(key: string): void {
    const timer = this.pending.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.pending.delete(key);
  }
}
