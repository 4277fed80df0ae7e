import { mkdir, rename, unlink, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { cancelled, notFound } from '../../errors.js';
import { countLookup } from '../../metrics/registry.js';
import type { BlobStat, BlobStore, Cancellation, ReadSource, StoreUsage } from '../types.js';
import { PieceBudget } from '../disk-pieces.js';
import { readFromDisk } from './disk-read.js';
import { PassingThrough } from './pass-through.js';
import type { Fill } from './fill.js';
import { Fills, type FillOutcome } from './fills.js';
import { TierLayout } from './layout.js';
import { adoptTierDir } from './adopt.js';
import { claimTier, loadTier } from './load.js';
import type { ClaimOptions } from './owner.js';
import { TierIndex, type TierEntry } from './lru.js';
import { fileLost, OpenFiles } from './open-files.js';
import { ReadWindows } from './read-windows.js';

export interface ReadTierOptions {
  readonly dir: string;
  readonly maxBytes: number;
  /**
   * How long S3's word that a kept blob exists is taken before it is asked again (a HEAD)
   * ahead of serving the blob from disk. Without a tier, a Read of a blob that another daemon's
   * collector deleted fails at once (its GET finds nothing) even while the daemon still
   * remembers the blob's size; the tier keeps that gap this short, where trusting the daemon's
   * 10-minute memory of existence would serve a reclaimed blob for that long. A hot blob costs
   * one HEAD per period.
   */
  readonly confirmMs?: number;
  readonly logger?: Logger;
  /**
   * @internal milliseconds on a monotonic clock (tests move it): a wall clock stepped back would
   * trust S3's word for the period plus the step
   */
  readonly now?: () => number;
  /** @internal who claims the directory and how often it renews its hold (tests) */
  readonly claim?: Pick<ClaimOptions, 'holders' | 'renewMs'>;
}

const CONFIRM_MS = 30_000;
/**
 * How long after its sending the Reads of a kept blob wait for the HEAD that asks S3 whether it
 * still exists; past it they read the blob from S3 (the GET answers for it, as without the tier)
 * and the HEAD's answer, when it comes, counts for later Reads. S3 answers a HEAD in
 * milliseconds; one it leaves unanswered takes the client's socket timeouts and retries, minutes,
 * and every Read of a hot blob waiting for it would hold its --max-streams place meanwhile.
 */
const CONFIRM_WAIT_MS = 2_000;
/** Fills at once; past it a read from the start just reads S3. */
const MAX_FILLS = 32;
/** As long as S3's own parked GET responses wait for the next Read. */
const FILL_IDLE_MS = 10_000;
/** Index entries take memory whatever the blobs' sizes (about 200 bytes each). */
const MAX_ENTRIES = 200_000;
/** A use moves a file's mtime (the order a restart finds) at most this often. */
const MARK_USE_MS = 60_000;
/** Kept blobs open at once between reads, and how long one stays open unused. */
const OPEN_FILES = 64;
const OPEN_IDLE_MS = 10_000;
/** Windows of 1 MiB (one Read message) kept for small Reads: 16 MiB at most. */
const READ_WINDOWS = 16;
/** Pieces of kept files that large Reads hold at once, all together (see PieceBudget); as S3's read-ahead. */
const READ_PIECES_BYTES = 32 * 1024 * 1024;

/**
 * A local read tier in front of another store (S3): blobs read are kept on disk, verified
 * against their digest when filled, evicted least recently used to stay within a size, and
 * found again after a restart. Everything but reading passes straight through: writes reach S3
 * before COMMIT answers, and whether a blob exists is always the store's word (the domain
 * looks that up before any Read reaches here, so a namespace's deleted blob stays NotFound).
 */
export class ReadTier extends PassingThrough implements BlobStore {
  readonly location: string;
  readonly remote: boolean | undefined;
  private readonly index: TierIndex;
  private readonly fills: Fills;
  private readonly files = new OpenFiles(OPEN_FILES, OPEN_IDLE_MS);
  private readonly windows = new ReadWindows(READ_WINDOWS, 1 << 20);
  private readonly pieces = new PieceBudget(READ_PIECES_BYTES);
  private readonly confirmMs: number;
  private readonly now: () => number;
  /**
   * The HEAD under way for each entry whose word from S3 ran out, and when it was sent (on the
   * clock timers run on): the Reads that find it so meanwhile wait on that one (see
   * CONFIRM_WAIT_MS) rather than each sending its own (a hot blob read by every stream at once
   * would send up to --max-streams of them).
   */
  private readonly confirming = new Map<TierEntry, { answer: Promise<BlobStat | undefined>; sentAt: number }>();
  private lastWarning = 0;
  /**
   * Another daemon took the directory over (this one's hold had lapsed): from then on every Read
   * goes to S3 and nothing in the directory is touched, as its files and room are that daemon's.
   */
  private givenUp = false;

  private constructor(
    inner: BlobStore,
    private readonly layout: TierLayout,
    maxBytes: number,
    private readonly unclaim: () => Promise<void>,
    private readonly logger: Logger | undefined,
    confirmMs: number,
    now: () => number,
  ) {
    super(inner);
    this.location = `${inner.location}, read tier ${layout.dir}`;
    this.remote = inner.remote;
    this.index = new TierIndex(maxBytes, MAX_ENTRIES);
    this.confirmMs = confirmMs;
    this.now = now;
    this.fills = new Fills({
      now,
      max: MAX_FILLS,
      idleMs: FILL_IDLE_MS,
      tempPath: () => layout.tempPath(),
      admit: (size) => this.index.admit(size),
      grow: async (from, to) => {
        const evicted = this.index.grow(from, to);
        if (evicted.length > 0) await this.removeFiles(evicted);
      },
      release: (fill) => this.index.release(fill.size, fill.written),
      keep: (fill) => this.keep(fill),
      ended: (fill, outcome) => this.report(fill, outcome),
    });
  }

  /** Claims the directory, removes unfinished fills and indexes the blobs a previous run kept. */
  static async open(inner: BlobStore, options: ReadTierOptions): Promise<ReadTier> {
    const layout = new TierLayout(options.dir);
    await adoptTierDir(layout);
    let opened: ReadTier | undefined;
    const unclaim = await claimTier(layout, {
      ...options.claim,
      waiting: (owner) => options.logger?.warn({ dir: layout.dir, owner }, 'read tier directory held by another daemon: waiting for its hold to lapse (50 s at most)'),
      lost: () => {
        options.logger?.error({ dir: layout.dir }, 'read tier directory taken over by another daemon (this one stopped renewing its hold): reads go to S3 alone from now on; restart one of them with another --cache-dir');
        opened?.giveUp();
      },
    });
    try {
      const now = options.now ?? (() => performance.now());
      const tier = (opened = new ReadTier(inner, layout, options.maxBytes, unclaim, options.logger, options.confirmMs ?? CONFIRM_MS, now));
      const found = await loadTier(layout);
      for (const blob of found) {
        // S3 may have lost the blob while the daemon was down: asked before it is first served
        const entry = { digest: blob.digest, size: blob.size, confirmedAt: -Infinity, markedAt: blob.usedAt };
        // past the limit (it may have been lowered since), the least recently used go, and one
        // larger than the limit alone
        await tier.removeFiles(tier.index.add(entry));
      }
      options.logger?.info({ dir: layout.dir, blobs: tier.index.count, bytes: tier.index.bytes }, 'read tier loaded');
      return tier;
    } catch (err) {
      await unclaim();
      throw err;
    }
  }

  /**
   * S3's fresh word is the tier's too: the collector and commits ask it, and a blob it no longer
   * has (another process deleted it) leaves the tier at once rather than when its 30 s lapse.
   */
  async statBlob(digest: string, options?: { fresh?: boolean }): Promise<BlobStat | undefined> {
    const askedAt = this.now();
    const stat = await this.inner.statBlob(digest, options);
    if (options?.fresh) this.heard(digest, stat, askedAt);
    return stat;
  }

  /** What S3 said of a blob, asked at `askedAt`: a kept file it no longer matches goes. */
  private heard(digest: string, stat: BlobStat | undefined, askedAt: number): void {
    if (!stat) this.fills.abandon(digest);
    const entry = this.index.get(digest);
    if (!entry) return;
    if (stat?.size === entry.size) entry.confirmedAt = Math.max(entry.confirmedAt, askedAt);
    else this.evict(entry);
  }

  knownBlob(digest: string, counted?: boolean): BlobStat | undefined {
    return this.inner.knownBlob?.(digest, counted);
  }

  /** See givenUp: fills under way are given up, and no file of the directory is used again. */
  private giveUp(): void {
    this.givenUp = true;
    void this.fills.close();
    this.files.closeAll();
    this.windows.clear();
  }

  async readBlob(digest: string, offset: number, length: number, options: { size: number; cancel?: Cancellation | undefined }): Promise<ReadSource> {
    const entry = this.givenUp ? undefined : this.index.get(digest);
    const stored = entry && (this.confirmed(entry, options.size) || (await this.stillStored(entry, options.size, options.cancel)));
    // to S3 without a fill: the directory is another daemon's, or S3's word was not had in time;
    // a miss all the same, not served from disk
    if (this.givenUp || stored === 'unasked') {
      countLookup('tier', false);
      return this.inner.readBlob(digest, offset, length, options);
    }
    if (entry && stored) {
      // counted by readFromDisk, which alone knows whether the file gave the bytes
      this.markUse(entry);
      return readFromDisk(this.files, this.windows, this.pieces, this.pathOf(entry), offset, length, options.size, (position, err) => {
        const lost = fileLost(err);
        this.logger?.debug({ digest, position, err, evicted: lost }, 'read tier: file unreadable, reading the rest from S3');
        // a verified blob is kept through what passes (out of descriptors, EAGAIN): this Read
        // alone goes to S3, and the next one tries the file again
        if (lost) this.evict(entry);
        return this.inner.readBlob(digest, position, offset + length - position, options);
      });
    }
    countLookup('tier', false);
    const fill = this.fills.claim(digest, offset, options.size);
    let source: ReadSource;
    try {
      source = await this.inner.readBlob(digest, offset, length, options);
    } catch (err) {
      if (fill) this.fills.drop(fill);
      throw err;
    }
    return fill ? this.fills.follow(fill, source, length) : source;
  }

  /** S3 said recently that the kept file's blob, of `size`, exists: asked first, and without a promise (Reads of 32 KiB come by the thousand). */
  private confirmed(entry: TierEntry, size: number): boolean {
    return entry.size === size && this.now() - entry.confirmedAt <= this.confirmMs;
  }

  /** The kept file's path, worked out once an entry: every Read from the tier needs it. */
  private pathOf(entry: TierEntry): string {
    return (entry.path ??= this.layout.blobPath(entry.digest));
  }

  /**
   * Whether the kept file may serve a read of a blob of `size`: S3 said recently that the blob
   * exists, or says so now. A blob S3 no longer has is NotFound, as its GET would have been.
   */
  private async stillStored(entry: TierEntry, size: number, cancel: Cancellation | undefined): Promise<boolean | 'unasked'> {
    if (this.confirmed(entry, size)) return true;
    const stat = entry.size === size ? await this.confirmInTime(entry, cancel) : undefined;
    if (stat === 'unasked') return stat;
    if (stat?.size === size) return true;
    this.evict(entry);
    // gone from S3: NotFound, as its GET would have been; another size: not this file's blob
    if (entry.size === size && !stat) throw notFound(`content ${entry.digest}: not found`);
    return false;
  }

  /**
   * S3's answer to a HEAD of the entry's blob, as one Read waits for it: 'unasked' when the HEAD
   * failed (throttled, timed out) or was sent more than CONFIRM_WAIT_MS ago, as it tells nothing
   * then (the Read asks S3's GET instead). A Read whose client goes away stops waiting at once.
   */
  private async confirmInTime(entry: TierEntry, cancel: Cancellation | undefined): Promise<BlobStat | undefined | 'unasked'> {
    const { answer, sentAt } = this.confirm(entry);
    const waitMs = sentAt + CONFIRM_WAIT_MS - performance.now();
    if (waitMs <= 0) return 'unasked';
    // read only where a Read waits: a signal made on first use costs the others nothing
    const signal = cancel?.signal;
    const left = () => cancelled(`content ${entry.digest}: the client cancelled the Read while the read tier asked S3 whether the blob still exists`);
    if (signal?.aborted) throw left();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        answer.catch(() => 'unasked' as const),
        new Promise<'unasked'>((resolve) => {
          timer = setTimeout(() => resolve('unasked'), waitMs);
          timer.unref();
        }),
        new Promise<never>((_, reject) => {
          onAbort = () => reject(left());
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The HEAD of the entry's blob under way, or a new one; its answer is heard whoever waits for it. */
  private confirm(entry: TierEntry): { answer: Promise<BlobStat | undefined>; sentAt: number } {
    const pending = this.confirming.get(entry);
    if (pending) return pending;
    // S3's yes holds as of some moment between the HEAD's sending and its answer: counted from
    // the sending, the earlier, as a fill's word is counted from the read that began it
    const askedAt = this.now();
    const answer = this.inner.statBlob(entry.digest, { fresh: true }).then((stat) => {
      this.heard(entry.digest, stat, askedAt);
      return stat;
    });
    const asking = { answer, sentAt: performance.now() };
    this.confirming.set(entry, asking);
    // forgotten however it ends: after a failure the next Read asks again
    const forget = () => void this.confirming.delete(entry);
    answer.then(forget, forget);
    return asking;
  }

  private markUse(entry: TierEntry): void {
    this.index.use(entry.digest);
    const now = Date.now();
    if (now - entry.markedAt < MARK_USE_MS) return;
    entry.markedAt = now;
    const at = new Date(now);
    void utimes(this.pathOf(entry), at, at).catch(() => undefined);
  }

  /** Moves a verified fill into place; false when it may not be kept after all. */
  private async keep(fill: Fill): Promise<boolean> {
    if (this.givenUp) return false;
    const path = this.layout.blobPath(fill.digest);
    await mkdir(dirname(path), { recursive: true });
    await rename(fill.tempPath, path);
    // abandoned meanwhile (the blob deleted, the tier closing): the file must not stay
    if (fill.failure) {
      await unlink(path).catch(() => undefined);
      return false;
    }
    // the GET that began the fill is S3's word that the blob exists, as of then
    void this.removeFiles(this.index.add({ digest: fill.digest, size: fill.size, confirmedAt: fill.startedAt, markedAt: Date.now() }, fill));
    return true;
  }

  private report(fill: Fill, outcome: FillOutcome): void {
    if (outcome === 'kept' || outcome === 'idle' || outcome === 'slow') {
      this.logger?.debug({ digest: fill.digest, size: fill.size, outcome }, 'read tier fill');
    } else if (outcome === 'corrupt') {
      this.logger?.warn({ digest: fill.digest, size: fill.size }, 'read tier: the bytes S3 holds for this blob do not match its digest; not kept');
    } else if (fill.failure && fill.failure.message !== 'abandoned' && Date.now() - this.lastWarning > 60_000) {
      // a full or failing disk fails every fill: one line a minute says so
      this.lastWarning = Date.now();
      this.logger?.warn({ digest: fill.digest, err: fill.failure }, 'read tier: could not keep a blob on disk; reads go on from S3');
    }
  }

  private evict(entry: TierEntry): void {
    if (this.index.get(entry.digest) !== entry) return;
    this.index.remove(entry.digest);
    void this.removeFiles([entry]);
  }

  /** Unlinks the entries' files; resolves once they are gone (a fill writes in the room they leave). */
  private async removeFiles(entries: readonly TierEntry[]): Promise<void> {
    // the directory's files are another daemon's now (see givenUp), a start still loading included
    if (this.givenUp) return;
    const unlinking: Promise<void>[] = [];
    for (const entry of entries) {
      const path = this.pathOf(entry);
      // the space comes back once the last descriptor of the file is closed too
      this.files.forget(path);
      this.windows.forget(path);
      unlinking.push(
        unlink(path).catch((err: NodeJS.ErrnoException) => {
          // no longer counted, yet still on disk: said, as nothing else would (a start finds it)
          if (err.code !== 'ENOENT') this.logger?.warn({ path, err }, 'read tier: could not remove a file it let go of; its space is not counted until the next start');
        }),
      );
    }
    await Promise.all(unlinking);
  }

  async deleteBlob(digest: string, options?: { deadline?: number }): Promise<void> {
    const forget = () => {
      this.fills.abandon(digest);
      const entry = this.index.get(digest);
      if (entry) this.evict(entry);
    };
    forget();
    try {
      await this.inner.deleteBlob(digest, options);
    } finally {
      // a read that started a fill from S3 while the delete was on its way may not keep it
      forget();
    }
  }

  usage(): StoreUsage {
    const inner = this.inner.usage();
    // kept files' pieces held for Reads are read ahead of their clients as S3's bytes are
    const readAhead = { inUse: inner.readAhead.inUse + this.pieces.used, limit: inner.readAhead.limit + this.pieces.total };
    return { ...inner, readAhead, tier: { inUse: this.index.bytes, limit: this.index.maxBytes } };
  }

  async close(): Promise<void> {
    await this.fills.close();
    this.files.closeAll();
    this.windows.clear();
    await this.unclaim();
    await this.inner.close();
  }
}
