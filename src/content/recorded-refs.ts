import { LRUCache } from 'lru-cache';
import { countBound } from '../lru.js';

/**
 * How long a namespace's listing of recorded refs answers for it: long enough that a build's
 * burst of small blobs shares one listing, short enough that a record another daemon writes is
 * seen by the opens after it within seconds.
 */
export const RECORDED_REFS_FRESH_MS = 5_000;
/**
 * How long an open waits for a listing before it looks its ref up as before: a listing S3 is
 * slow to answer must not hold up every small open of the namespace.
 */
export const LISTING_WAIT_MS = 1_000;
/** How long a namespace whose records do not fit a listing goes without one: each open looks its ref up meanwhile. */
export const TOO_MANY_BACKOFF_MS = 60_000;
/**
 * What one listing may hold of keys (a key may be about 1 KiB), and apart from them of refs
 * noted since it was asked for; a namespace with more records has each small open look its
 * ref up.
 */
export const MAX_LISTING_BYTES = 16 * 1024;
/** Namespaces whose listing is kept at once: 4 MiB in all at most, keys and notes. */
const MAX_NAMESPACES = 128;

interface Listing {
  /** When the listing was asked for (monotonic ms). */
  at: number;
  /** Record key segments the listing found; undefined until it answers, or when it found too many or failed. */
  keys?: Set<string>;
  /** The namespace had more records than fit: none is asked for until TOO_MANY_BACKOFF_MS is up. */
  tooMany?: boolean;
  /** Refs this daemon recorded since the listing was asked for (a listing may miss them). */
  noted: Set<string>;
  /** What `noted` holds, counted as keys are. */
  notedBytes: number;
  /** The listing answered, or the open's wait for it is up. */
  waited: Promise<void>;
}

const bytesOf = (key: string) => 64 + 2 * key.length;

/**
 * Whether a namespace's ref may have an ingest record in the bucket, from one listing of the
 * namespace's records shared by its opens for RECORDED_REFS_FRESH_MS. A small ingest's open (see
 * Ingests.openWriter) looks its ref's record up only where this says one may be there: of four
 * S3 requests a small ingest sent, that look-up was one, and almost always found nothing. At most
 * one listing a namespace every 5 s, and only while small ingests are opened there.
 *
 * A record another daemon writes after the listing (or one a lagging listing does not show yet)
 * is missed until the listing is renewed. What that costs is bounded: a small ingest continues
 * no recorded ingest anyway (a record's checkpoint lies at least a part in), so all it misses is
 * refusing a ref recorded with another size and discarding a record left behind, which the sweep
 * discards once it expires. The records this daemon writes are noted as the write begins and
 * once it lands, so a listing that began in between does not miss them.
 *
 * Own code over lru-cache's fetchMethod: a listing has to take the refs noted while it runs.
 * A listing still running once evicted is held only by the opens waiting for it (at most
 * --max-streams, each for LISTING_WAIT_MS).
 */
export class RecordedRefs {
  private readonly listings = new LRUCache<string, Listing>(countBound(MAX_NAMESPACES));

  constructor(
    /** The record keys of a namespace, below its prefix: `segmentsOf` names what a ref's key may be. */
    private readonly list: (ns: string) => AsyncIterable<string>,
    /** The key segments below the namespace's prefix a ref's record may be stored under (its current and its legacy form). */
    private readonly segmentsOf: (ns: string, ref: string) => readonly string[],
    private readonly failed: (ns: string, err: unknown) => void,
    private readonly clock: () => number = () => performance.now(),
    private readonly wait: (ms: number) => Promise<void> = unrefDelay,
  ) {}

  /** False only where a listing at most RECORDED_REFS_FRESH_MS old shows no record of `ref`, nor did this daemon write one since. */
  async mayHave(ns: string, ref: string): Promise<boolean> {
    const listing = this.current(ns);
    await listing.waited;
    const keys = listing.keys;
    if (!keys || listing.noted.has(ref)) return true;
    return this.segmentsOf(ns, ref).some((segment) => keys.has(segment));
  }

  /** This daemon writes (or has written) a record of `ref`: a listing kept or running answers that it may be there. */
  noteRecorded(ns: string, ref: string): void {
    const listing = this.listings.get(ns);
    if (!listing || listing.tooMany || listing.noted.has(ref)) return;
    listing.notedBytes += bytesOf(ref);
    // bounded as the listing is: past it, the next open lists again
    if (listing.notedBytes > MAX_LISTING_BYTES) this.listings.delete(ns);
    else listing.noted.add(ref);
  }

  private current(ns: string): Listing {
    const now = this.clock();
    const kept = this.listings.get(ns);
    if (kept && now - kept.at < (kept.tooMany ? TOO_MANY_BACKOFF_MS : RECORDED_REFS_FRESH_MS)) return kept;
    const listing: Listing = { at: now, noted: new Set(), notedBytes: 0, waited: Promise.resolve() };
    const done = this.read(ns).then(
      (keys) => {
        if (keys) listing.keys = keys;
        else listing.tooMany = true;
      },
      (err: unknown) => this.failed(ns, err),
    );
    listing.waited = Promise.race([done, this.wait(LISTING_WAIT_MS)]);
    this.listings.set(ns, listing);
    return listing;
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

function unrefDelay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
