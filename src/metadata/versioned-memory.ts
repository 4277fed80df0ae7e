import { LRUCache } from 'lru-cache';
import { countLookup, type LookupCache } from '../metrics/registry.js';

/** How often a full memory looks for what it may let go (a look goes through all of it). */
const PURGE_EVERY_MS = 60_000;

/**
 * What was read of objects a listing names, each with the version the store gave for it (S3's
 * ETag and size): an object the listing shows at the version kept is known without reading it
 * again. Only a listing's word is trusted: a read by key asks the store. Bounded in bytes; once
 * full it keeps what it has rather than take more, so a listing longer than it finds its first
 * objects kept every time (least-recently-used would find none), and what no lookup found for
 * `keptForMs` makes room.
 */
export class VersionedMemory<T> {
  private readonly kept: LRUCache<string, { version: string; value: T; size: number }>;
  private purgedAt = 0;

  constructor(
    private readonly maxBytes: number,
    /** Whose hits and misses `s3cs_cache_lookups_total` counts. */
    private readonly cache: LookupCache,
    /** How long an object no lookup finds stays: longer than the time between two listings that should find it. */
    keptForMs: number,
  ) {
    // lru-cache takes whole milliseconds only (a --gc-interval may have fractions)
    this.kept = new LRUCache({ maxSize: maxBytes, ttl: Math.max(1, Math.ceil(keptForMs)), sizeCalculation: (entry) => entry.size });
  }

  /** What was kept of `key` at `version`, the version a listing shows; undefined when not kept at it. */
  get(key: string, version: string | undefined): T | undefined {
    const entry = version === undefined ? undefined : this.kept.get(key, { updateAgeOnGet: false });
    const hit = entry !== undefined && entry.version === version;
    countLookup(this.cache, hit);
    if (!hit) return undefined;
    // found again: it stays for another while (a stale one that never matches does not)
    this.kept.get(key, { updateAgeOnGet: true });
    return entry.value;
  }

  /**
   * Keeps what was read of `key` at `version`, where it fits; `size` is what it holds, in bytes.
   * Whatever was kept of it before goes either way: it no longer matches what is stored.
   */
  keep(key: string, version: string | undefined, value: T, size: number): void {
    const entry = version === undefined ? undefined : { version, value, size: size + 2 * (key.length + version.length) + 96 };
    if (!entry || entry.size > this.maxBytes / 64) {
      this.kept.delete(key);
      return;
    }
    if (!this.kept.has(key) && this.kept.calculatedSize + entry.size > this.maxBytes) {
      if (Date.now() - this.purgedAt < PURGE_EVERY_MS) return;
      this.purgedAt = Date.now();
      this.kept.purgeStale();
      if (this.kept.calculatedSize + entry.size > this.maxBytes) return;
    }
    this.kept.set(key, entry);
  }

  forget(key: string): void {
    this.kept.delete(key);
  }
}
