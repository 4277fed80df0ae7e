import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { docKeys, type Documents } from '../metadata/documents.js';

interface LockRecord {
  owner: string;
  until: string;
}

/** How long a lock holds without renewal (a crashed collector's lock lapses after it). */
const LOCK_TTL_MS = 10 * 60_000;
const RENEW_EVERY_MS = 60_000;
/**
 * A lock unrenewed for its TTL less this is given up, though renewals may land again: another
 * collector judges its lapse by its own clock, which may run 20 s ahead (see reclaim-marks.ts),
 * and takes it by a write and a read back a settle later; a renewal landing just before the TTL
 * would leave both collecting until the next renewal's read saw the other's name.
 */
const LOST_MARGIN_MS = 2 * 60_000;

/** The lock is no longer this collector's: unlike a failed request, trying again cannot help. */
export class LockLost extends Error {}

/**
 * One deleting collector at a time per bucket: two could undo each other's reclaim notes (one
 * clearing the "about to delete" another wrote), and a writer told to go ahead by the first
 * would lose its blob to the second. S3 offers no compare-and-swap we may rely on, so the
 * lock is taken by writing it and reading it back a moment later: of collectors that both
 * found it free, only the last to write sees its own name, and one that checked it long
 * before writing starts over.
 */
export class CollectorLock {
  private readonly owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  /**
   * When the lock last written was dated, on both clocks: its age is the larger gap, so that
   * neither a wall clock set back (an NTP step) nor a suspended machine (whose monotonic clock
   * stops) makes a stale lock look fresh. Never written: infinitely old.
   */
  private renewedAt = { mono: -Infinity, wall: -Infinity };
  /** The renewal under way, which every keep() waiting on one shares. */
  private keeping: Promise<void> | undefined;
  /**
   * A write of the lock landed too close to its lapse, maybe over another collector's lock:
   * removing it at release would leave that collector without one, for a third to take too.
   */
  private leaveToLapse = false;
  private renewing: NodeJS.Timeout | undefined;
  /** The background renewal under way, which a release waits for (its write would bring the lock back). */
  private renewal: Promise<void> | undefined;
  private released = false;
  private lost: unknown;

  constructor(
    private readonly docs: Documents,
    /** How long to wait before reading the lock back; longer than a PUT takes. */
    private readonly settleMs = 2_000,
    /** Told of each background renewal that failed (lost or not), for the operator's log. */
    private readonly onRenewalFailed: (err: unknown) => void = () => undefined,
  ) {}

  /** Takes the lock, or says who holds it until when. */
  async acquire(): Promise<{ held: true } | { held: false; by: string; until: string }> {
    // From before the check is read: S3 may have answered it as of any moment of that read.
    const checking = performance.now();
    const current = await this.docs.read<LockRecord>(docKeys.gcLock());
    if (current && current.owner !== this.owner && Date.parse(current.until) > Date.now()) {
      return { held: false, by: current.owner, until: current.until };
    }
    let slow: boolean;
    let back: LockRecord | undefined;
    let readBackAt = 0;
    try {
      await this.write();
      await new Promise((resolve) => setTimeout(resolve, this.settleMs));
      // Written long after the check, another may have taken the lock in between and our write
      // have landed over it: this run gives way (the next one tries again) rather than share.
      // Two collectors that both go ahead need one whose check and read back lie more than twice
      // the settle apart (the other wrote, waited the settle and read back between them), so any
      // bound under that is safe; the read back's own time does not count toward it. This rests
      // on a read after a write of the key seeing that write, as AWS S3 and MinIO promise.
      slow = performance.now() - checking > this.settleMs + this.settleMs / 2;
      readBackAt = Date.now();
      back = await this.docs.read<LockRecord>(docKeys.gcLock());
    } catch (err) {
      // The caller releases only a lock it was told it holds, so a failure here (a write whose
      // answer was lost may have landed too) would leave ours in the bucket for the whole TTL,
      // every collector giving way to it. Let it go as release does, only while still ours; if
      // that fails too it lapses, and the caller hears of what went wrong first.
      await this.release().catch(() => undefined);
      throw err;
    }
    if (back?.owner === this.owner && !slow) return { held: true };
    // no DELETE attempt past a settle from the read that found it ours (see remove)
    if (back?.owner === this.owner) await this.remove(readBackAt).catch(() => undefined);
    return { held: false, by: back?.owner === this.owner ? 'a collector that took it meanwhile' : (back?.owner ?? 'another collector'), until: back?.until ?? '' };
  }

  /**
   * Keeps the lock through a long run; throws when it was lost (unrenewed for 8 of its 10
   * minutes, or another collector holds it now), so that the run stops before deleting anything more. A
   * failed read or write of the lock throws too: the run's steps call this before deleting, and
   * returning without the lock seen ours and dated afresh could let a step run on past its lapse.
   * Lost once, it throws at every call after.
   */
  async keep(): Promise<void> {
    if (this.lost) throw this.lost;
    if (this.released) throw new LockLost("the collector let go of the bucket's lock");
    if (this.unrenewedSince(this.renewedAt) < RENEW_EVERY_MS) return;
    this.keeping ??= this.renew().finally(() => {
      this.keeping = undefined;
    });
    return this.keeping;
  }

  private async renew(): Promise<void> {
    const last = this.renewedAt;
    const stale = () => this.unrenewedSince(last) >= LOCK_TTL_MS - LOST_MARGIN_MS;
    if (stale()) throw this.lose('unrenewed too close to its lapse');
    const current = await this.docs.read<LockRecord>(docKeys.gcLock());
    if (current?.owner !== this.owner) throw this.lose(`now held by ${current?.owner ?? 'nobody'}`);
    // a read that answered near the lapse: another collector (its clock ahead) may have taken
    // the lock since, and a write now could land over it
    if (stale()) throw this.lose('unrenewed too close to its lapse');
    try {
      await this.write();
    } catch (err) {
      // its answer lost, the PUT may have landed: past the margin, maybe over another's lock
      if (stale()) this.leaveToLapse = true;
      throw err;
    }
    if (stale()) {
      // the write did land late, maybe over that other collector's lock: left to lapse (also
      // when the run let go meanwhile: its release waits for this and then leaves it)
      this.leaveToLapse = true;
      throw this.lose('unrenewed too close to its lapse');
    }
    if (this.released) throw new LockLost("the collector let go of the bucket's lock");
  }

  private unrenewedSince(at: { mono: number; wall: number }): number {
    return Math.max(performance.now() - at.mono, Date.now() - at.wall);
  }

  /** The lock is lost for good: every keep() after throws this too. */
  private lose(why: string): LockLost {
    const lost = new LockLost(`the collector lost the bucket's lock (${why}); stopping this run`);
    this.lost ??= lost;
    return lost;
  }

  /**
   * Renews the lock in the background as well, for steps that call no `keep` for long (the mark
   * phase reads a document per hold, lease and note: tens of minutes on a large bucket, past the
   * lock's time). A renewal that finds the lock lost makes the next `keep` throw.
   */
  renewWhileHeld(): void {
    this.renewing ??= setInterval(() => {
      if (this.renewal) return;
      this.renewal = this.keep()
        .catch((err: unknown) => {
          // Only a lock found lost stops the run. A renewal whose read or write failed (an S3 503)
          // leaves the lock as its last landed write dated it, still ours for the rest of its
          // TTL: each tick after tries again, 30 s apart, many before the TTL runs out. The run
          // deletes nothing on a stale lock meanwhile: its own keep() lets it on unasked only
          // while the lock was written within the last minute, else renews it or throws (and
          // throws once 8 of its 10 minutes have passed unrenewed, whatever S3 answers).
          //
          // A renewal that ends after the run let go of the lock is no news to the operator.
          if (!this.released) this.onRenewalFailed(err);
          if (err instanceof LockLost) {
            clearInterval(this.renewing);
            this.renewing = undefined;
          }
        })
        .finally(() => {
          this.renewal = undefined;
        });
    }, RENEW_EVERY_MS / 2);
    this.renewing.unref();
  }

  async release(): Promise<void> {
    clearInterval(this.renewing);
    this.renewing = undefined;
    this.released = true;
    await this.renewal;
    await this.keeping?.catch(() => undefined);
    if (this.leaveToLapse) return;
    // read again before each try: a DELETE is sent only while the lock is this collector's
    for (let tries = 1; ; tries++) {
      const from = Date.now();
      const current = await this.docs.read<LockRecord>(docKeys.gcLock());
      if (current?.owner !== this.owner) return;
      try {
        return await this.remove(from);
      } catch (err) {
        if (tries >= 3) throw new Error(`the collector could not remove its lock (it lapses by ${current.until}; collectors until then find it taken): ${(err as Error).message}`);
      }
    }
  }

  /**
   * Removes the lock, sending no attempt later than the settle after `from`. The lock is free to
   * another collector once any attempt of an earlier DELETE or this one lands, which is after
   * `from` (the read before it found the lock still this collector's); that collector reads its
   * own write back a settle after writing, so an attempt landing before then makes it give way,
   * and one landing after would leave it collecting with no lock, for a third to take too. The S3
   * client retries an attempt whose answer was lost seconds later. An attempt cut off on its way
   * may still be carried out by S3 later: unlikely, not impossible, as for the collector's deletes.
   */
  private remove(from = Date.now()): Promise<void> {
    return this.docs.remove(docKeys.gcLock(), { deadline: from + this.settleMs });
  }

  private async write(): Promise<void> {
    if (this.released) return;
    const at = { mono: performance.now(), wall: Date.now() };
    await this.docs.write(docKeys.gcLock(), { owner: this.owner, until: new Date(at.wall + LOCK_TTL_MS).toISOString() });
    // counted from when the lock it wrote was dated, once it is written: a write that hangs
    // leaves the lock as old as the last one that landed, which is what the bucket holds
    this.renewedAt = at;
  }
}
