/**
 * Which blobs the read tier keeps, in order of last use, and the disk space they take. Pure
 * bookkeeping: the tier unlinks the files of the entries this hands back as evicted.
 */

/**
 * Files take whole filesystem blocks: counting a 300-byte config blob as 300 bytes would let a
 * tier of many small blobs use several times its limit. 4 KiB is the usual block size.
 */
const BLOCK = 4096;

export function spaceFor(size: number): number {
  return Math.max(BLOCK, Math.ceil(size / BLOCK) * BLOCK);
}

export interface TierEntry {
  readonly digest: string;
  readonly size: number;
  /** When S3 last said the blob exists (epoch ms); 0 when not since this process started. */
  confirmedAt: number;
  /** When the file's mtime was last set to mark a use, so the order survives a restart. */
  markedAt: number;
}

export class TierIndex {
  /** Least recently used first: a Map keeps insertion order, and a use re-inserts. */
  private readonly entries = new Map<string, TierEntry>();
  private used = 0;
  private reserved = 0;

  constructor(
    readonly maxBytes: number,
    /** Memory for the index itself is bounded too, whatever the blobs' sizes. */
    readonly maxEntries: number,
  ) {}

  /** Disk space the kept blobs take. */
  get bytes(): number {
    return this.used;
  }

  get count(): number {
    return this.entries.size;
  }

  get(digest: string): TierEntry | undefined {
    return this.entries.get(digest);
  }

  /** Marks the entry as the most recently used. */
  use(digest: string): TierEntry | undefined {
    const entry = this.entries.get(digest);
    if (!entry) return undefined;
    this.entries.delete(digest);
    this.entries.set(digest, entry);
    return entry;
  }

  /**
   * Sets aside room for a blob about to be written, evicting the least recently used entries
   * it needs. Undefined (nothing evicted) when it cannot fit: larger than the tier, or the room
   * is held by fills still under way.
   */
  reserve(size: number): TierEntry[] | undefined {
    const need = spaceFor(size);
    if (need > this.maxBytes - this.reserved) return undefined;
    const evicted: TierEntry[] = [];
    let freed = 0;
    for (const oldest of this.entries.values()) {
      if (this.used - freed + this.reserved + need <= this.maxBytes) break;
      evicted.push(oldest);
      freed += spaceFor(oldest.size);
    }
    for (const entry of evicted) this.remove(entry.digest);
    this.reserved += need;
    return evicted;
  }

  /** Gives back a reservation whose blob was not kept. */
  release(size: number): void {
    this.reserved -= spaceFor(size);
  }

  /**
   * Records a blob on disk as the most recently used, turning its reservation (if it had one)
   * into use. Returns the entries evicted to stay within both limits, which may include the
   * new one when it alone does not fit (only possible for an unreserved one, found at start).
   */
  add(entry: TierEntry, options: { reserved: boolean }): TierEntry[] {
    if (options.reserved) this.reserved -= spaceFor(entry.size);
    this.remove(entry.digest);
    this.entries.set(entry.digest, entry);
    this.used += spaceFor(entry.size);
    const evicted: TierEntry[] = [];
    for (const oldest of this.entries.values()) {
      if (this.used + this.reserved <= this.maxBytes && this.entries.size - evicted.length <= this.maxEntries) break;
      evicted.push(oldest);
      this.used -= spaceFor(oldest.size);
    }
    for (const gone of evicted) this.entries.delete(gone.digest);
    return evicted;
  }

  remove(digest: string): TierEntry | undefined {
    const entry = this.entries.get(digest);
    if (!entry) return undefined;
    this.entries.delete(digest);
    this.used -= spaceFor(entry.size);
    return entry;
  }

  all(): IterableIterator<TierEntry> {
    return this.entries.values();
  }
}
