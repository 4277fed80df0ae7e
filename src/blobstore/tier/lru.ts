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
  /**
   * When S3 last said the blob exists, on the tier's monotonic clock; -Infinity when not since
   * this process started (a blob found at start), which no clock reading can make recent.
   */
  confirmedAt: number;
  /** When the file's mtime was last set to mark a use, so the order survives a restart. */
  markedAt: number;
  /** The kept file's path, once the tier worked it out. */
  path?: string;
}

/** Disk space `written` bytes of a fill under way take: nothing until its first byte. */
function spaceWritten(written: number): number {
  return written === 0 ? 0 : spaceFor(written);
}

/**
 * The kept blobs and the fills under way share the tier's space. A fill is admitted against the
 * sizes of the other fills (so the fills together always fit, and one never has to stop for
 * room), but kept blobs are evicted only as its bytes reach the disk: a fill given up after a
 * few bytes (a Read of one byte from the start, a `ctr content get` interrupted) costs the
 * kept blobs no more than those bytes.
 */
export class TierIndex {
  /** Least recently used first: a Map keeps insertion order, and a use re-inserts. */
  private readonly entries = new Map<string, TierEntry>();
  private used = 0;
  /** Space the bytes fills wrote so far take; on disk beside the kept blobs. */
  private filling = 0;
  /** Space the fills under way will take once complete: the limit on admitting another. */
  private promised = 0;

  constructor(
    readonly maxBytes: number,
    /** Memory for the index itself is bounded too, whatever the blobs' sizes. */
    readonly maxEntries: number,
  ) {}

  /** Disk space the kept blobs take. */
  get bytes(): number {
    return this.used;
  }

  /** Disk space the kept blobs and the bytes of fills under way take together. */
  get onDisk(): number {
    return this.used + this.filling;
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
   * Admits a fill of a blob of `size`, evicting nothing: false when it cannot fit, being larger
   * than the tier or than the room the other fills under way leave.
   */
  admit(size: number): boolean {
    const need = spaceFor(size);
    if (need > this.maxBytes - this.promised) return false;
    this.promised += need;
    return true;
  }

  /**
   * A fill is about to have `to` bytes on disk where it had `from`: evicts the least recently
   * used blobs that room needs, and returns them. Always succeeds for an admitted fill (the
   * fills' sizes together fit), evicting every kept blob at worst.
   */
  grow(from: number, to: number): TierEntry[] {
    this.filling += spaceWritten(to) - spaceWritten(from);
    if (this.used + this.filling <= this.maxBytes) return [];
    const evicted: TierEntry[] = [];
    for (const oldest of this.entries.values()) {
      if (this.used + this.filling <= this.maxBytes) break;
      evicted.push(oldest);
      this.used -= spaceFor(oldest.size);
    }
    for (const entry of evicted) this.entries.delete(entry.digest);
    return evicted;
  }

  /** Gives back what a fill of a blob of `size` that wrote `written` bytes held, its file gone. */
  release(size: number, written: number): void {
    this.promised -= spaceFor(size);
    this.filling -= spaceWritten(written);
  }

  /**
   * Records a blob on disk as the most recently used; a complete fill's (`fill`) space turns
   * into the blob's. Returns the entries evicted to stay within both limits, or the new one alone,
   * refused, when it could not fit even with every other kept blob gone (only possible for one
   * found at start, the limit lowered since): evicting others for it would only lose them too.
   */
  add(entry: TierEntry, fill?: { written: number }): TierEntry[] {
    if (fill) this.release(entry.size, fill.written);
    // a refused blob's file goes, and with it whatever this index kept under its path
    this.remove(entry.digest);
    if (spaceFor(entry.size) > this.maxBytes - this.filling) return [entry];
    this.entries.set(entry.digest, entry);
    this.used += spaceFor(entry.size);
    const evicted: TierEntry[] = [];
    for (const oldest of this.entries.values()) {
      if (this.used + this.filling <= this.maxBytes && this.entries.size - evicted.length <= this.maxEntries) break;
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
