/** Reads `length` bytes of the file from `position`; fails when the file has fewer. */
export type ReadFile = (position: number, length: number) => Promise<Buffer>;

/** What windows being read count against while they are read (the store's PieceBudget). */
export interface WindowBudget {
  tryTake(bytes: number): boolean;
  give(bytes: number): void;
}

interface Window {
  readonly key: string;
  readonly path: string;
  readonly start: number;
  readonly bytes: Buffer;
}

/**
 * Stretches of a few kept files read ahead for the small Reads that follow them. containerd's
 * content proxy (`ctr content get`) reads a blob as one Read call per 32 KiB: read one by one,
 * each piece costs a trip to the file system's thread pool, which took more of the daemon's time
 * than the bytes. So a small Read that goes on in order reads a window ahead once, and the calls
 * after it are served from memory. Kept files never change, so a window stays true until its file
 * goes.
 *
 * Reading ahead is a bet that the reader goes on, and a reader that jumps about makes every bet a
 * loss on the shared thread pool. So a window is read only for a run of Reads each starting where
 * the last stopped, and is no larger than what the run has returned so far: such a run reads from
 * disk at most about twice what it gets. The exception is a Read from a blob's first byte, which
 * gets a whole window at once, as a whole blob is how `ctr content get` reads it. Windows are kept
 * per stretch, not per file, so readers at different places of one blob do not take each other's.
 * At most `max` windows are held, the least recently used dropped first; at most `maxRuns` runs are
 * followed, the same way.
 */
export class ReadWindows {
  /** By `start:path`, least recently used first. */
  private readonly windows = new Map<string, Window>();
  /** Where each followed run stopped (`end:path`): the bytes it has returned, least recently used first. */
  private readonly runs = new Map<string, number>();

  constructor(
    private readonly max: number,
    /** Bytes a window holds at most: one Read message. */
    readonly size: number,
    private readonly maxRuns = 4 * max,
  ) {}

  /**
   * `length` bytes of `path` (a file of `fileSize` bytes) from `position`: from a window when one
   * holds them, else read by `readFile`, with a window ahead when the Read goes on a run.
   */
  async read(path: string, position: number, length: number, fileSize: number, readFile: ReadFile, budget?: WindowBudget): Promise<Buffer> {
    const held = this.readHeld(path, position, length);
    if (held) return held;
    const returned = this.takeRun(path, position);
    const ahead = position === 0 ? this.size : Math.min(this.size, returned);
    const wanted = Math.max(length, Math.min(ahead, fileSize - position));
    // a window on its way is a MiB no other bound holds (a thousand Reads of a hot blob's first
    // bytes at once): only within the budget, else the Read reads just its own bytes
    const span = wanted > length && budget && !budget.tryTake(wanted) ? length : wanted;
    let read: Buffer;
    try {
      read = await readFile(position, span);
    } finally {
      if (span > length && budget) budget.give(span);
    }
    if (span > length) this.keep({ key: `${position}:${path}`, path, start: position, bytes: read });
    this.followRun(path, position + length, returned + length);
    return read.subarray(0, length);
  }

  /** As read, when a window holds the bytes (most Reads of a run): without a promise. */
  readHeld(path: string, position: number, length: number): Buffer | undefined {
    const bytes = this.held(path, position, length);
    if (!bytes) return undefined;
    const returned = this.takeRun(path, position);
    this.followRun(path, position + length, returned + length);
    return bytes;
  }

  forget(path: string): void {
    for (const window of this.windows.values()) if (window.path === path) this.windows.delete(window.key);
    const suffix = `:${path}`;
    for (const key of this.runs.keys()) if (key.endsWith(suffix)) this.runs.delete(key);
  }

  clear(): void {
    this.windows.clear();
    this.runs.clear();
  }

  /** How many windows are held (for tests and bounds). */
  get count(): number {
    return this.windows.size;
  }

  private held(path: string, position: number, length: number): Buffer | undefined {
    // values, not entries: an entry is an array made at each step, and this runs at every Read
    for (const window of this.windows.values()) {
      const from = position - window.start;
      if (window.path !== path || from < 0 || from + length > window.bytes.length) continue;
      this.windows.delete(window.key);
      this.windows.set(window.key, window);
      return window.bytes.subarray(from, from + length);
    }
    return undefined;
  }

  private keep(window: Window): void {
    this.windows.delete(window.key);
    this.windows.set(window.key, window);
    dropOldest(this.windows, this.max);
  }

  /** The bytes returned so far by the run a Read at `position` continues (0 when none), no longer followed there. */
  private takeRun(path: string, position: number): number {
    const key = `${position}:${path}`;
    const returned = this.runs.get(key) ?? 0;
    this.runs.delete(key);
    return returned;
  }

  private followRun(path: string, end: number, returned: number): void {
    const key = `${end}:${path}`;
    this.runs.delete(key);
    this.runs.set(key, returned);
    dropOldest(this.runs, this.maxRuns);
  }
}

function dropOldest<K, V>(map: Map<K, V>, max: number): void {
  for (const oldest of map.keys()) {
    if (map.size <= max) break;
    map.delete(oldest);
  }
}
