import { memoryLetGo } from '../memory-trim.js';

/** How recently a smaller size must have been taken to stay kept when a whole part is taken. */
const SMALLER_KEPT_MS = 1_000;

/**
 * Part buffers kept for the next part once S3 has stored the one they held. Allocating 8 MiB
 * per part left the same amount of garbage, and on the ingest path that garbage set off V8's
 * full collections and kept the heap's high-water mark up. A part's buffer starts at `smallest`
 * and doubles up to `size` as its bytes arrive (so a stream that sent little holds little), and
 * buffers of each of those sizes are kept: at most `keep` of each, let go after `idleMs` without
 * use, so an idle daemon holds none, and a smaller size at a whole part's take when no first part
 * has taken it for a second.
 */
export class PartBuffers {
  private free = new Map<number, Buffer[]>();
  /** When each size a part grows through was last taken (bounded: those sizes only). */
  private lastTaken = new Map<number, number>();
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
    // Only first parts take the smaller sizes. Kept while a large ingest went on alone, one of each
    // (7.75 MiB beside 8 MiB parts) stayed as long as its parts kept coming back, part of the
    // daemon's peak (about 6 MiB in the bench); while small ingests keep starting beside it, they
    // are still taken and stay, or each such ingest would leave its growth as garbage again.
    const now = Date.now();
    if (size === this.size) {
      for (const smaller of [...this.free.keys()]) {
        if (smaller < size && now - (this.lastTaken.get(smaller) ?? 0) >= SMALLER_KEPT_MS) this.free.delete(smaller);
      }
    } else if (this.keeps(size)) {
      this.lastTaken.set(size, now);
    }
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
    this.idle = setTimeout(() => {
      this.free = new Map();
      memoryLetGo();
    }, this.idleMs);
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
