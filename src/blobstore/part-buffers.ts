/**
 * Part buffers kept for the next part once S3 has stored the one they held. Allocating 8 MiB
 * per part left the same amount of garbage, and on the ingest path that garbage set off V8's
 * full collections and kept the heap's high-water mark up. A part's buffer starts at `smallest`
 * and doubles up to `size` as its bytes arrive (so a stream that sent little holds little), and
 * buffers of each of those sizes are kept: at most `keep` of each, let go after `idleMs` without
 * use, so an idle daemon holds none, and the smaller ones once a whole part is taken.
 */
export class PartBuffers {
  private free = new Map<number, Buffer[]>();
  private idle: NodeJS.Timeout | undefined;

  constructor(
    readonly size: number,
    private readonly keep: number,
    private readonly idleMs = 30_000,
    readonly smallest = 256 * 1024,
  ) {}

  /** The size a part buffer of `length` bytes grows to next (the first one's, for 0). */
  grown(length: number): number {
    return Math.min(this.size, Math.max(this.smallest, 2 * length));
  }

  /** The first size a part buffer of `current` bytes grows through that holds `length` bytes. */
  sizeFor(length: number, current = 0): number {
    let s = this.grown(current);
    while (s < length && s < this.size) s = this.grown(s);
    return s;
  }

  /** A buffer of `size` bytes whose content is undefined. */
  take(size: number): Buffer {
    // A whole part is taken by a stream past its first part. The smaller sizes come back only with
    // the first part of another ingest; kept meanwhile, one of each (7.75 MiB beside 8 MiB parts)
    // stayed for as long as any ingest ran, part of the daemon's peak (about 6 MiB in the bench).
    if (size === this.size) for (const smaller of [...this.free.keys()]) if (smaller < size) this.free.delete(smaller);
    const reused = this.free.get(size)?.pop();
    if (reused) return reused;
    // not from Node's shared pool: these outlive any small-buffer slab
    return Buffer.allocUnsafeSlow(size);
  }

  /** Hands back a buffer from `take` that nothing refers to any longer. */
  give(buffer: Buffer): void {
    if (!this.keeps(buffer.length)) return;
    const kept = this.free.get(buffer.length) ?? [];
    if (kept.length >= this.keep) return;
    kept.push(buffer);
    this.free.set(buffer.length, kept);
    clearTimeout(this.idle);
    this.idle = setTimeout(() => (this.free = new Map()), this.idleMs);
    this.idle.unref();
  }

  get kept(): number {
    let n = 0;
    for (const kept of this.free.values()) n += kept.length;
    return n;
  }

  /** Only the sizes parts pass through are kept: a blob's own small size is not asked for again. */
  private keeps(length: number): boolean {
    for (let s = this.grown(0); ; s = this.grown(s)) {
      if (s === length) return true;
      if (s >= this.size || s > length) return false;
    }
  }
}
