import type { BlobStat, BlobStore } from '../blobstore/types.js';
import type { Labels } from '../labels.js';
import type { ReclaimGuard } from '../metadata/reclaim-guard.js';
import { FINAL_WAIT_MS } from '../metadata/reclaim-marks.js';
import { now } from '../clock.js';
import { ClaimsInFlight, type RemoveHold } from './claims-in-flight.js';
import { LateTakeBacks } from './late-take-backs.js';
import type { ContentRecord, Memberships } from './memberships.js';

/** What a COMMIT hands over once size and digest are verified. */
export interface ClaimRequest {
  size: number;
  /**
   * Labels given at commit: a new hold gets them; a hold already there keeps its own, as
   * containerd's commit of content its namespace has answers AlreadyExists and labels nothing.
   */
  labels: Labels;
  /** This stream found the blob absent moments ago, so it is not asked again. */
  absent: boolean;
  /** Must succeed before anything is written (a lookup the open left running). */
  before?: Promise<void> | undefined;
  /** Stores every byte but the step that makes them visible (a multipart upload's last part). */
  prepare(): Promise<void>;
  /** Makes the bytes visible under the blob key. */
  store(): Promise<void>;
  /** Goes beside `store` (the ingest record's removal); its failure is not the commit's. */
  alongside(): Promise<void>;
}

/** The bytes were stored by this commit, or were stored already (AlreadyExists). */
export type ClaimOutcome = 'stored' | 'exists';

export interface ClaimsOptions {
  /** How long a hold whose note could not be read waits for its checked take-back: FINAL_WAIT_MS (tests shorten it). */
  lateWaitMs?: number;
  /** The most take-backs that wait so at once (past it, one is checked at once): 1,024. */
  lateLimit?: number;
}

interface HoldWritten {
  /** This call wrote the hold (one the namespace did not have, or one for bytes gone). */
  wrote: boolean;
}

/**
 * A namespace claims a blob: at COMMIT the bytes are stored, or found stored already, and either
 * way the namespace ends up holding them; at an open with an expected digest, a stored blob is
 * held. All in as few S3 round trips as the protocol with the collector allows (see
 * reclaim-marks.ts): a writer about to answer AlreadyExists first writes its hold, then reads the
 * blob's reclaim note.
 *
 * Why each step may go beside the others:
 * - The existence check, the read of the namespace's hold (unless cached) and the last part go
 *   together in the first round; nothing there writes a reference.
 * - A hold written before its bytes exist is harmless: Info and Read need the bytes too, and the
 *   collector can only delete a blob it listed and noted long before (at least --gc-grace, 10
 *   minutes), never one that was missing a moment ago. So new bytes and their hold are written
 *   side by side, without reading the note; should the bytes fail to land, the hold is taken
 *   back (unless another writer stored them meanwhile). A crash between the two can leave a hold
 *   whose bytes never came: the namespace lists it, and Info and Read answer NotFound for it.
 * - Where the namespace holds nothing yet, the new hold reads the same whether the bytes turn out
 *   stored or not (size, now, the commit's labels), so it goes as soon as that is known: an
 *   AlreadyExists then costs the note's read after it.
 * - Where the namespace holds the blob already, that hold stands for the one a writer writes: a
 *   note read after it was seen either shows a collector at work, or the collector's last check
 *   comes later and sees the hold, which is left as it is. A hold is read from the bucket, never
 *   taken from this daemon's cache: another daemon's Delete may have dropped one cached here, and
 *   a hold that is not there protects nothing (an absence cached stands: the hold it leads to is
 *   written either way).
 * - A note that cannot be read leaves the bytes not known to stay, and the note's error answers
 *   at once. A hold the claim wrote is not taken back then: another daemon's claim may have
 *   written the same hold and answered AlreadyExists on it (ClaimsInFlight sees only this
 *   daemon's). Once a collector that marked the blob final before the hold landed must have
 *   deleted the bytes (FINAL_WAIT_MS, a writer's longest wait for a note's outcome), the hold goes
 *   only if the bucket no longer stores them: bytes still there were not deleted under it.
 */
export class Claims {
  private readonly inFlight = new ClaimsInFlight();

  private readonly late: LateTakeBacks;

  constructor(
    private readonly blobs: BlobStore,
    private readonly memberships: Memberships,
    private readonly guard: ReclaimGuard,
    options: ClaimsOptions = {},
  ) {
    this.late = new LateTakeBacks(options.lateWaitMs ?? FINAL_WAIT_MS, options.lateLimit ?? 1_024);
  }

  /** A verified COMMIT: the bytes stored with the namespace's hold, or found stored and held. */
  async commit(ns: string, digest: string, request: ClaimRequest): Promise<ClaimOutcome> {
    return this.underWay(ns, digest, () => this.claim(ns, digest, request));
  }

  private async claim(ns: string, digest: string, request: ClaimRequest): Promise<ClaimOutcome> {
    const before = request.before ?? Promise.resolve();
    // The stream's "absent" stands only while this daemon has not stored the blob since (another
    // stream's COMMIT): answering it would replace the hold that commit wrote, labels and all,
    // where containerd answers AlreadyExists. A store that keeps no such cache is asked.
    const absent = request.absent && this.blobs.knownBlob !== undefined && this.blobs.knownBlob(digest, false) === undefined;
    const stat = absent ? Promise.resolve(undefined) : this.blobs.statBlob(digest);
    // bytes known to be missing get a fresh hold whatever the namespace held before
    const held = absent ? Promise.resolve(undefined) : this.memberships.readForWriter(ns, digest);
    const prepared = request.prepare();
    const hold = this.writeHold(ns, digest, request, before, stat, held);
    // each is awaited below on the paths that need it; the others' failures are not the commit's
    for (const p of [before, stat, held, prepared, hold]) p.catch(() => undefined);
    let present: BlobStat | undefined;
    try {
      present = await stat;
    } catch (err) {
      await this.takeBack(ns, digest, hold);
      throw err;
    }
    if (!present) return this.storeHeld(ns, digest, request, before, prepared, hold);
    if (await this.staysOrGiveBack(ns, digest, this.staysHeld(digest, held, hold), hold)) {
      // the upload is discarded next: its last part must not be sent after that
      await prepared.catch(() => undefined);
      return 'exists';
    }
    // A collector deleted the bytes (or is deleting them): they are stored again, as new ones.
    const fresh = hold.then(async (): Promise<HoldWritten> => {
      await this.writeFresh(ns, digest, request);
      return { wrote: true };
    });
    fresh.catch(() => undefined);
    return this.storeHeld(ns, digest, request, before, prepared, fresh);
  }

  /**
   * A blob found stored when a Write opened with its digest: the namespace holds it, and true
   * tells AlreadyExists; false when a collector is taking the bytes, and then the client writes
   * them (a hold this call wrote is taken back, so nothing points at missing bytes meanwhile).
   * A note that cannot be read throws its error, a hold this call wrote taken back later, unless
   * the bytes are stored then (see staysOrGiveBack).
   */
  holdIfStays(ns: string, digest: string, stat: BlobStat): Promise<boolean> {
    // an open that finds the bytes going has the client send them: it answered nothing on the hold
    const answered = (stays: boolean) => stays;
    return this.underWay(ns, digest, async () => {
      const held = this.memberships.readForWriter(ns, digest);
      const hold = this.writeHold(ns, digest, { size: stat.size, labels: {} }, Promise.resolve(), Promise.resolve(stat), held);
      hold.catch(() => undefined);
      if (await this.staysOrGiveBack(ns, digest, this.staysHeld(digest, held, hold), hold)) return true;
      await this.giveBack(ns, digest, hold);
      return false;
    }, answered);
  }

  /**
   * For an Update's labelling, a claim under way (see underWay) that wrote the namespace's hold
   * (`created` where the namespace had none): whether the bytes stay, by the collector's note read
   * after the write. Where they do not, or the note cannot be read (its error is thrown), a hold
   * the Update created is taken back as holdIfStays does (later, and checked, for the note's
   * error); one there before it is left, as the
   * collector's last check saw it, or the writer that wrote it checks the note itself.
   */
  async heldStays(ns: string, digest: string, created: boolean): Promise<boolean> {
    const hold = Promise.resolve({ wrote: created });
    if (await this.staysOrGiveBack(ns, digest, this.guard.stays(digest), hold)) return true;
    await this.giveBack(ns, digest, hold);
    return false;
  }

  /**
   * `work` counted as a claim of the blob in the namespace, once any take-back of its hold is
   * done: a COMMIT, an open with the blob's digest, an Update of its labels. `answered`: whether
   * its result answered the client on the hold (one thrown never did).
   */
  async underWay<T>(ns: string, digest: string, work: () => Promise<T>, answered: (result: T) => boolean = () => true): Promise<T> {
    const key = claimKey(ns, digest);
    const end = this.inFlight.begin(key);
    let onHold = false;
    try {
      await this.inFlight.settled(key);
      const result = await work();
      onHold = answered(result);
      return result;
    } finally {
      // a claim that answered on the hold read the note after it was there: it stands for it
      if (onHold) this.late.cancel(key);
      end();
    }
  }

  /**
   * Writes what the namespace's hold must say once the bytes are stored, as soon as that is
   * known: a new hold needs only to know there is none; an existing one, whether its bytes are
   * still stored (else it is stale and replaced).
   */
  private async writeHold(
    ns: string,
    digest: string,
    request: Pick<ClaimRequest, 'size' | 'labels'>,
    before: Promise<void>,
    stat: Promise<BlobStat | undefined>,
    held: Promise<ContentRecord | undefined>,
  ): Promise<HoldWritten> {
    const existing = await held;
    await before;
    if (!existing || !(await stat)) {
      await this.writeFresh(ns, digest, request);
      return { wrote: true };
    }
    return { wrote: false };
  }

  private async writeFresh(ns: string, digest: string, request: Pick<ClaimRequest, 'size' | 'labels'>): Promise<void> {
    const at = now().toISOString();
    await this.memberships.write(ns, digest, { size: request.size, createdAt: at, updatedAt: at, labels: { ...request.labels } });
  }

  /**
   * Whether stored bytes stay now that the namespace holds them: the collector's note is read
   * after the hold was written, or beside the write where a hold was already there.
   */
  private async staysHeld(digest: string, held: Promise<ContentRecord | undefined>, hold: Promise<HoldWritten>): Promise<boolean> {
    if (await held) {
      const [stays] = await Promise.all([this.guard.stays(digest), hold]);
      return stays;
    }
    await hold;
    return this.guard.stays(digest);
  }

  /** New bytes and their hold side by side; the ingest record's removal goes with them. */
  private async storeHeld(
    ns: string,
    digest: string,
    request: ClaimRequest,
    before: Promise<void>,
    prepared: Promise<void>,
    hold: Promise<HoldWritten>,
  ): Promise<'stored'> {
    const ready = Promise.all([before, prepared]);
    const [stored, held] = await Promise.allSettled([
      ready.then(() => request.store()),
      hold,
      ready.then(() => request.alongside()),
    ]);
    if (stored.status === 'rejected') {
      await this.takeBack(ns, digest, hold);
      throw stored.reason;
    }
    // the bytes are stored without a hold: harmless (the collector reclaims them once nothing
    // needs them), and the client's next try finds them and holds them
    if (held.status === 'rejected') throw held.reason;
    return 'stored';
  }

  /** Takes back a hold written for bytes that did not land, unless another writer stored them. */
  private async takeBack(ns: string, digest: string, hold: Promise<HoldWritten>): Promise<void> {
    if (!(await wrote(hold))) return;
    await this.inFlight.takeBack(claimKey(ns, digest), this.removeHold(ns, digest), true).catch(() => undefined);
  }

  private removeHold(ns: string, digest: string): RemoveHold {
    return (checked) => (checked ? this.removeUnlessStored(ns, digest) : this.memberships.remove(ns, digest));
  }

  /**
   * Removes the hold unless the bytes are stored (another writer stored them meanwhile).
   * Where the look-up fails the hold stays: one naming missing bytes is harmless (Info answers
   * NotFound, the collector drops it after a day), one taken from bytes another writer stored
   * meanwhile under the same key loses them. A writer whose store is still on its way is not
   * seen by the look-up: one in this process keeps the hold (ClaimsInFlight); one in another
   * daemon can lose it, a window as wide as the look-up and the removal.
   */
  private async removeUnlessStored(ns: string, digest: string): Promise<void> {
    const stored = await this.blobs.statBlob(digest, { fresh: true }).then(
      (stat) => stat !== undefined,
      () => true,
    );
    if (!stored) await this.memberships.remove(ns, digest);
  }

  /**
   * `stays` (the read of the collector's note); should it fail, the hold this claim wrote is
   * taken back once a collector deleting the bytes right now must be done, unless they are
   * stored then: removed at once, it might be the hold another daemon's claim wrote too and
   * answered AlreadyExists on, and its blob would be reclaimed with nothing holding it.
   */
  private async staysOrGiveBack(ns: string, digest: string, stays: Promise<boolean>, hold: Promise<HoldWritten>): Promise<boolean> {
    try {
      return await stays;
    } catch (err) {
      // the note's error is the answer (Unavailable); the window counts from the hold's write
      if (await wrote(hold)) {
        const key = claimKey(ns, digest);
        // as a claim of its own, so that one under way then defers it to its end (ClaimsInFlight)
        const takeBack = () => this.underWay(ns, digest, () => this.inFlight.takeBack(key, this.removeHold(ns, digest), true), () => false);
        this.late.put(key, takeBack);
      }
      throw err;
    }
  }

  /**
   * Takes back a hold this claim wrote for bytes a collector took (or may be taking): the hold
   * goes now, or, where another claim of the blob in the namespace was under way beside this
   * one, once the last has ended, and then only unless the bytes are stored by then (see
   * ClaimsInFlight).
   */
  private async giveBack(ns: string, digest: string, hold: Promise<HoldWritten>): Promise<void> {
    if (!(await wrote(hold))) return;
    await this.inFlight.takeBack(claimKey(ns, digest), this.removeHold(ns, digest), false);
  }
}

/** Whether the hold was written by this call (a write that failed wrote nothing to take back). */
function wrote(hold: Promise<HoldWritten>): Promise<boolean> {
  return hold.then(
    (h) => h.wrote,
    () => false,
  );
}

function claimKey(ns: string, digest: string): string {
  return `${ns}\n${digest}`;
}
