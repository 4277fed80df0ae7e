import { LRUCache } from 'lru-cache';
import { countBound } from '../lru.js';

/**
 * How long a namespace's listing of recorded refs answers for it: long enough that a build's
 * burst of small blobs shares one listing, short enough that a record another daemon writes is
 * seen by the opens after it within seconds.
 */
export const RECORDED_REFS_FRESH_MS = 5_000;
/**
 * Small opens within RECORDED_REFS_FRESH_MS that make a namespace busy enough to list. A listing
 * costs S3 more than the GET of one record (on AWS a LIST is priced as about twelve GETs, and
 * Swift answers it slower): it pays only where it spares several, so a namespace that opens a
 * small ingest now and then has its refs looked up one by one, as does one of many namespaces
 * opening in turn.
 */
export const LIST_AFTER_OPENS = 8;
/** A listing is renewed this old, at the next open while the namespace is busy, so a burst that goes on keeps one. */
export const RENEW_AFTER_MS = 4_000;
/** How long a namespace whose records do not fit a listing goes without one: each open looks its ref up meanwhile. */
export const TOO_MANY_BACKOFF_MS = 60_000;
/**
 * What one listing may hold of keys (a key may be about 1 KiB), and apart from them of refs
 * noted since it was asked for; a namespace with more records has each small open look its
 * ref up.
 */
export const MAX_LISTING_BYTES = 16 * 1024;
/**
 * Keys one request of a listing asks for: a key counts at least 64 bytes, so a page this long
 * settles whether the keys fit, and S3's usual 1,000 (up to 1 KiB each) are never read at once.
 */
export const LISTING_PAGE_KEYS = Math.floor(MAX_LISTING_BYTES / 64) + 1;
/** Namespaces whose listing is kept at once. */
export const MAX_NAMESPACES = 128;
/**
 * Listings running at once, daemon-wide. With the kept ones this bounds what listings hold:
 * 128 × (16 KiB of keys + 16 KiB of notes) kept, about 4 MiB (a namespace let go of keeps
 * nothing, see dispose), and 4 × (16 KiB of keys + a page of 257 keys) being read.
 */
export const MAX_RUNNING_LISTINGS = 4;
/**
 * How long a note outlives the ask of a listing that landed: a note made as a write began, with
 * the write still on its way, and a listing that lags behind a write (as Swift's may) both leave
 * the listing without the key for a while.
 */
export const NOTE_OUTLIVES_MS = RECORDED_REFS_FRESH_MS;

interface Listing {
  /** When it was asked for (monotonic ms): it answers until RECORDED_REFS_FRESH_MS after. */
  askedAt: number;
  /** Record key segments it found. */
  keys: Set<string>;
}

interface Namespace {
  /** The latest listing that answered, while it is fresh. */
  listing?: Listing;
  /** No listing is asked for before this (a namespace with too many records, or one whose listing failed). */
  pausedUntil: number;
  /** When the latest LIST_AFTER_OPENS small opens came, oldest first. */
  recentOpens: number[];
  /** Let go of (evicted, or past its bound of notes): a listing it ran is dropped as it lands. */
  disposed: boolean;
  /** Refs this daemon recorded (a listing may miss them), and when: kept until a listing asked for NOTE_OUTLIVES_MS later lands. */
  noted: Map<string, number>;
  /** What `noted` holds, counted as keys are. */
  notedBytes: number;
}

const bytesOf = (key: string) => 64 + 2 * key.length;

/**
 * Whether a namespace's ref may have an ingest record in the bucket, from one listing of the
 * namespace's records shared by its opens for RECORDED_REFS_FRESH_MS. A small ingest's open (see
 * Ingests.openWriter) looks its ref's record up only where this says one may be there: of four
 * S3 requests a small ingest sent, that look-up was one, and almost always found nothing.
 *
 * No open waits for a listing: one without a fresh listing looks its ref up (beside the blob's
 * existence check, so at no cost in time), and a namespace busy enough (LIST_AFTER_OPENS within
 * RECORDED_REFS_FRESH_MS) has a listing asked for in the background, for the opens after it,
 * renewed once RENEW_AFTER_MS old while it stays that busy. One listing of a namespace at a time,
 * and only while it opens small ingests that often.
 *
 * A record another daemon writes after the listing (or one a lagging listing does not show yet)
 * is missed until the listing is renewed. What that costs is bounded: a small ingest continues
 * no recorded ingest anyway (a record's checkpoint lies at least a part in), so all it misses is
 * refusing a ref recorded with another size and discarding a record left behind, which the sweep
 * discards once it expires. The records this daemon writes are noted as the write begins and
 * once it lands (or fails: a write that failed may have landed), so a listing that began in
 * between does not miss them.
 *
 * Own code over lru-cache's fetchMethod: a listing has to take the refs noted while it runs,
 * and the stale one answers meanwhile only for as long as it is fresh.
 */
export class RecordedRefs {
  private readonly namespaces = new LRUCache<string, Namespace>({
    ...countBound(MAX_NAMESPACES),
    dispose: (space) => {
      space.disposed = true;
      space.listing = undefined;
      space.noted.clear();
    },
  });
  /** Namespaces being listed, kept or let go of: one listing of a namespace at a time. */
  private readonly running = new Set<string>();

  constructor(
    /** The record keys of a namespace, below its prefix: `segmentsOf` names what a ref's key may be. */
    private readonly list: (ns: string) => AsyncIterable<string>,
    /** The key segments below the namespace's prefix a ref's record may be stored under (its current and its legacy form). */
    private readonly segmentsOf: (ns: string, ref: string) => readonly string[],
    private readonly failed: (ns: string, err: unknown) => void,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /**
   * False only where a listing at most RECORDED_REFS_FRESH_MS old shows no record of `ref`, nor
   * did this daemon write one since. Counts the open towards the namespace's next listing.
   */
  mayHave(ns: string, ref: string): boolean {
    const now = this.clock();
    let space = this.namespaces.get(ns);
    if (!space) {
      space = { pausedUntil: -Infinity, recentOpens: [], disposed: false, noted: new Map(), notedBytes: 0 };
      this.namespaces.set(ns, space);
    }
    space.recentOpens.push(now);
    if (space.recentOpens.length > LIST_AFTER_OPENS) space.recentOpens.shift();
    const listing = space.listing && now - space.listing.askedAt < RECORDED_REFS_FRESH_MS ? space.listing : undefined;
    if (!listing) space.listing = undefined;
    const busy = space.recentOpens.length === LIST_AFTER_OPENS && now - space.recentOpens[0]! < RECORDED_REFS_FRESH_MS;
    if (busy && (!listing || now - listing.askedAt >= RENEW_AFTER_MS)) this.renew(ns, space, now);
    if (!listing || space.noted.has(ref)) return true;
    return this.segmentsOf(ns, ref).some((segment) => listing.keys.has(segment));
  }

  /** This daemon writes (or has written) a record of `ref`: a listing kept or running answers that it may be there. */
  noteRecorded(ns: string, ref: string): void {
    const space = this.namespaces.peek(ns);
    // nothing listed or being listed: the next listing, asked for later, shows what landed by then
    if (!space || (!space.listing && !this.running.has(ns))) return;
    const had = space.noted.get(ref);
    space.noted.set(ref, this.clock());
    if (had !== undefined) return;
    space.notedBytes += bytesOf(ref);
    // bounded as the listing is: past it, the namespace starts afresh (its opens look their refs up)
    if (space.notedBytes > MAX_LISTING_BYTES) this.namespaces.delete(ns);
  }

  private renew(ns: string, space: Namespace, now: number): void {
    if (this.running.has(ns) || now < space.pausedUntil || this.running.size >= MAX_RUNNING_LISTINGS) return;
    this.running.add(ns);
    void this.listInto(ns, space, now);
  }

  private async listInto(ns: string, space: Namespace, askedAt: number): Promise<void> {
    try {
      const keys = await this.read(ns);
      if (space.disposed) return;
      if (!keys) {
        space.pausedUntil = askedAt + TOO_MANY_BACKOFF_MS;
        return;
      }
      space.listing = { askedAt, keys };
      // a record noted well before this listing was asked for shows in it: its write had landed by
      // then (one still on its way notes it again as it ends, landed or failed)
      for (const [ref, at] of space.noted) {
        if (at < askedAt - NOTE_OUTLIVES_MS) {
          space.noted.delete(ref);
          space.notedBytes -= bytesOf(ref);
        }
      }
    } catch (err) {
      // the opens meanwhile look their refs up; one listing a freshness period at most, failing or not
      space.pausedUntil = askedAt + RECORDED_REFS_FRESH_MS;
      try {
        this.failed(ns, err);
      } catch {
        // a report that fails leaves the listing failed, nothing more
      }
    } finally {
      this.running.delete(ns);
    }
  }

  private async read(ns: string): Promise<Set<string> | undefined> {
    const keys = new Set<string>();
    let bytes = 0;
    for await (const key of this.list(ns)) {
      bytes += bytesOf(key);
      if (bytes > MAX_LISTING_BYTES) return undefined;
      keys.add(key);
    }
    return keys;
  }
}
