/**
 * Part-sized buffers kept for the next part once S3 has stored the one they held. Allocating
 * 8 MiB per part left the same amount of garbage, and on the ingest path that garbage set off
 * V8's full collections and kept the heap's high-water mark up. At most `keep` wait here, and
 * they are let go after `idleMs` without use, so an idle daemon holds none.
 */
export class PartBuffers {
  private free: Buffer[] = [];
  private idle: NodeJS.Timeout | undefined;

  constructor(
    readonly size: number,
    private readonly keep: number,
    private readonly idleMs = 30_000,
  ) {}

  /** A buffer of `size` bytes whose content is undefined. */
  take(size: number): Buffer {
    if (size === this.size) {
      const reused = this.free.pop();
      if (reused) return reused;
    }
    // not from Node's shared pool: these outlive any small-buffer slab
    return Buffer.allocUnsafeSlow(size);
  }

  /** Hands back a buffer from `take` that nothing refers to any longer. */
  give(buffer: Buffer): void {
    if (buffer.length !== this.size || this.free.length >= this.keep) return;
    this.free.push(buffer);
    clearTimeout(this.idle);
    this.idle = setTimeout(() => (this.free = []), this.idleMs);
    this.idle.unref();
  }

  get kept(): number {
    return this.free.length;
  }
}
