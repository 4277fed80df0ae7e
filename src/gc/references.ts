import type { References } from '../content/types.js';
import { scanRoots, type RootSources } from './roots.js';

/** How long a finished scan of records and leases answers for. */
const SCAN_MAX_AGE_MS = 30_000;

interface Scan {
  /** Unset while the scan is under way. */
  finishedAt: number | undefined;
  digests: Promise<Set<string>>;
}

/**
 * What a namespace that deleted its hold asks before it answers NotFound: whether another
 * namespace holds the blob (asked of the bucket each time), or a cache record or an unexpired
 * lease names it (from a scan shared by all such calls for a while, so that a burst of them
 * costs one scan). The content store keeps a yes for a while (CommittedContent).
 */
export class ScannedReferences implements References {
  private scan: Scan | undefined;

  constructor(private readonly sources: RootSources) {}

  async neededOutside(ns: string, digest: string): Promise<boolean> {
    if (await this.sources.memberships.heldElsewhere(ns, digest)) return true;
    return (await this.recordsAndLeases()).has(digest);
  }

  /**
   * A scan under way is shared whatever its age: one that outlasts the 30 s had another started
   * beside it by every call after that, each as slow, on a bucket where scans are slow already.
   * Its 30 s count from when it finished: from its start, a scan that long would be out of date
   * as soon as it answered, and the next call would start another.
   */
  private recordsAndLeases(): Promise<Set<string>> {
    const current = this.scan;
    if (current && (current.finishedAt === undefined || performance.now() - current.finishedAt <= SCAN_MAX_AGE_MS)) return current.digests;
    const scan: Scan = {
      finishedAt: undefined,
      digests: scanRoots(this.sources, Date.now(), 'records-and-leases').then((r) => r.digests),
    };
    scan.digests.then(
      () => (scan.finishedAt = performance.now()),
      // a failed scan is not kept: the next call tries again
      () => {
        if (this.scan === scan) this.scan = undefined;
      },
    );
    this.scan = scan;
    return scan.digests;
  }
}
