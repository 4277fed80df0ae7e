/**
 * The last stretch read of a few kept files, for the small Reads that follow it. containerd's
 * content proxy (`ctr content get`) reads a blob as one Read call per 32 KiB: read one by one,
 * each piece costs a trip to the file system's thread pool, which took more of the daemon's
 * time than the bytes. A small Read instead reads a whole window once, and the calls after it
 * are served from memory. Kept files never change, so a window stays true until its file goes.
 * At most `max` windows are held, the least recently used dropped first.
 */
export class ReadWindows {
  private readonly windows = new Map<string, { start: number; bytes: Buffer }>();

  constructor(
    private readonly max: number,
    /** Bytes a window holds: one Read message. */
    readonly size: number,
  ) {}

  /** `length` bytes of `path` from `position` when a window holds all of them. */
  get(path: string, position: number, length: number): Buffer | undefined {
    const window = this.windows.get(path);
    if (!window) return undefined;
    const from = position - window.start;
    if (from < 0 || from + length > window.bytes.length) return undefined;
    // most recently used last, so the first is the one to drop
    this.windows.delete(path);
    this.windows.set(path, window);
    return window.bytes.subarray(from, from + length);
  }

  put(path: string, start: number, bytes: Buffer): void {
    this.windows.delete(path);
    this.windows.set(path, { start, bytes });
    for (const oldest of this.windows.keys()) {
      if (this.windows.size <= this.max) break;
      this.windows.delete(oldest);
    }
  }

  forget(path: string): void {
    this.windows.delete(path);
  }

  clear(): void {
    this.windows.clear();
  }
}
