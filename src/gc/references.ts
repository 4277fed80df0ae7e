import type { References } from '../content/types.js';
import { scanRoots, type RootSources } from './roots.js';

/** How long one scan of records and leases answers for. */
const SCAN_MAX_AGE_MS = 30_000;

/**
 * What a namespace that deleted its hold asks before it answers NotFound: whether another
 * namespace holds the blob (asked of the bucket each time), or a cache record or an unexpired
 * lease names it (from a scan shared by all such calls for a while, so that a burst of them
 * costs one scan).
 */
export class ScannedReferences implements References {
  private scan: { at: number; digests: Promise<Set<string>> } | undefined;

  constructor(private readonly sources: RootSources) {}

  async neededOutside(ns: string, digest: string): Promise<boolean> {
    if (await this.sources.memberships.heldElsewhere(ns, digest)) return true;
    return (await this.recordsAndLeases()).has(digest);
  }

  private recordsAndLeases(): Promise<Set<string>> {
    if (!this.scan || Date.now() - this.scan.at > SCAN_MAX_AGE_MS) {
      const digests = scanRoots(this.sources, Date.now(), 'records-and-leases').then((r) => r.digests);
      // a failed scan is not kept: the next call tries again
      digests.catch(() => (this.scan = undefined));
      this.scan = { at: Date.now(), digests };
    }
    return this.scan.digests;
  }
}
