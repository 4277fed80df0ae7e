import { Fill, type FillResult } from './fill.js';
import type { ReadSource } from '../types.js';

/**
 * How a fill ended: kept in the tier, its bytes not the blob's, the file unusable, or left
 * unfinished: no reader carried it on (`idle`), or its readers fell behind FILL_PACE (`slow`).
 */
export type FillOutcome = 'kept' | 'corrupt' | 'failed' | 'idle' | 'slow';

/**
 * The pace a fill must keep: from its first Read's start, FILL_GRACE_MS, then a second for each
 * FILL_PACE bytes taken. Until it ends a fill holds one of the `max` places and its blob's whole
 * size against --cache-max-size (evicting kept blobs as it writes), and idleness alone does not
 * end it: a reader taking a piece just inside idleMs each time (a client draining 10 GiB at a few
 * KiB/s) would hold both for hours or days, and a few such readers stop every other blob from
 * being filled. 1 MiB/s is far below what a pull from S3 or containerd's proxy reads at (tens to
 * hundreds of MiB/s), so it cuts only such readers: the slow one above loses its fill after about
 * a minute, and no fill outlives 60 s plus a second a MiB (a 10 GiB blob's under 3 h), and idleMs
 * more (the pace is asked as each piece or Read comes; the idle timers end a fill none comes for).
 * The grace lets a small blob's reader, or a large one's start (a GET's first bytes, TCP's slow
 * start, a client that pauses a few seconds), run without a rate being asked of it over seconds,
 * where a rate means little. Given up, the fill goes as an idle one does: its reader goes on from
 * S3.
 */
export const FILL_GRACE_MS = 60_000;
export const FILL_PACE = 1 << 20;

export interface FillsOptions {
  /** Fills under way at once (each holds a file and up to 1 MiB queued for it). */
  readonly max: number;
  /** A fill no reader has carried on for this long is given up. */
  readonly idleMs: number;
  tempPath(): string;
  /** Admits a fill of a blob of `size` (evicting nothing); false when the tier cannot take it now. */
  admit(size: number): boolean;
  /** Makes room for a fill's file to grow from `from` to `to` bytes. */
  grow(from: number, to: number): Promise<void>;
  /** Gives back what a fill held, once its file is gone. */
  release(fill: Fill): void;
  /** A verified fill to keep; resolves false when it was not kept after all. */
  keep(fill: Fill): Promise<boolean>;
  /** How each fill ended, for the log. */
  ended(fill: Fill, outcome: FillOutcome): void;
  /** The tier's monotonic clock, which times S3's word that a blob exists. */
  now?(): number;
}

/**
 * The fills under way, at most one per blob. A fill starts with a read from a blob's first
 * byte and is carried on by each read that continues exactly where the last one stopped, so
 * containerd's content proxy (one Read call per MiB, in order) fills the tier as surely as one
 * whole read does. Reads that jump about, or a second reader of the same blob, pass by: they
 * read from S3 as they would without the tier.
 */
export class Fills {
  private readonly fills = new Map<string, Fill>();
  private readonly idle = new Map<Fill, NodeJS.Timeout>();
  /** Fills being verified and kept, for close() to wait on. */
  private readonly finishing = new Set<Promise<void>>();
  private claims = 0;

  constructor(private readonly options: FillsOptions) {}

  get count(): number {
    return this.fills.size;
  }

  /**
   * The fill a read of `digest` from `offset` should carry: the waiting one that stopped at
   * `offset`, or a new one when the read starts at 0 and there is room. Undefined otherwise.
   * A claimed fill is handed to `follow`, or to `drop` if the read could not start.
   */
  claim(digest: string, offset: number, size: number): Fill | undefined {
    const waiting = this.fills.get(digest);
    if (waiting) {
      if (waiting.busy || waiting.finishing || waiting.failure || waiting.position !== offset) return undefined;
      if (this.fellBehind(waiting)) return undefined;
      clearTimeout(this.idle.get(waiting));
      this.idle.delete(waiting);
      waiting.busy = true;
      waiting.carrier = ++this.claims;
      return waiting;
    }
    if (offset !== 0 || this.fills.size >= this.options.max || !this.options.admit(size)) return undefined;
    const startedAt = this.options.now?.() ?? performance.now();
    const fill = new Fill(digest, size, this.options.tempPath(), (from, to) => this.options.grow(from, to), startedAt);
    fill.busy = true;
    fill.carrier = ++this.claims;
    this.fills.set(digest, fill);
    return fill;
  }

  /** The read's bytes (`length` of them), unchanged, carrying the fill along. */
  follow(fill: Fill, source: ReadSource, length: number): AsyncIterable<Buffer> {
    return this.unlessStalled(fill, fill.carrier, fill.follow(source, (clean) => this.stopped(fill, clean), length));
  }

  /**
   * A read whose client takes nothing for `idleMs` lets its fill go: the fill holds one of the
   * `max` places, a file and the blob's room, which a client that never reads on would keep
   * until its stream is reset. So does one that takes its pieces too slowly (see FILL_PACE).
   * The read goes on passing its bytes through.
   */
  private async *unlessStalled(fill: Fill, carrier: number, pieces: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    // a fill this read let go of as its last bytes passed is no longer its own: being kept,
    // or carried on by the next read
    const own = () => fill.busy && fill.carrier === carrier && this.fills.get(fill.digest) === fill;
    for await (const piece of pieces) {
      if (own()) this.fellBehind(fill);
      const timer = setTimeout(() => {
        if (!own()) return;
        this.options.ended(fill, 'idle');
        this.drop(fill);
      }, this.options.idleMs);
      timer.unref();
      try {
        yield piece;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Gives the fill up when it has fallen behind FILL_PACE, saying so. */
  private fellBehind(fill: Fill): boolean {
    const elapsed = (this.options.now?.() ?? performance.now()) - fill.startedAt;
    if (elapsed <= FILL_GRACE_MS + (fill.position / FILL_PACE) * 1000) return false;
    this.options.ended(fill, 'slow');
    this.drop(fill);
    return true;
  }

  /** Gives up the blob's fill, if any: a reader carrying it goes on reading from S3. */
  abandon(digest: string): void {
    const fill = this.fills.get(digest);
    if (!fill) return;
    fill.abandon();
    // one being carried or finished ends by itself; its end releases the space
    if (!fill.busy && !fill.finishing) this.drop(fill);
  }

  /** A fill a read could not start with, or one that can go no further. */
  drop(fill: Fill): void {
    if (this.fills.get(fill.digest) !== fill) return;
    this.fills.delete(fill.digest);
    clearTimeout(this.idle.get(fill));
    this.idle.delete(fill);
    // its space counts until its file is gone: the disk never holds more than the limit
    void fill.discard().then(() => this.options.release(fill));
  }

  private stopped(fill: Fill, clean: boolean): void {
    // let go of already, its reader having stalled: its end was told then
    if (this.fills.get(fill.digest) !== fill) return;
    if (!clean || fill.failure) {
      this.options.ended(fill, 'failed');
      this.drop(fill);
    } else if (fill.position === fill.size) {
      const done = this.finish(fill).finally(() => this.finishing.delete(done));
      this.finishing.add(done);
    } else {
      // the next Read of a proxy comes at once; one that never comes leaves the fill behind
      const timer = setTimeout(() => {
        this.options.ended(fill, 'idle');
        this.drop(fill);
      }, this.options.idleMs);
      timer.unref();
      this.idle.set(fill, timer);
    }
  }

  private async finish(fill: Fill): Promise<void> {
    fill.finishing = true;
    let kept = false;
    let result: FillResult = 'failed';
    try {
      result = await fill.complete();
      kept = result === 'verified' && (await this.options.keep(fill));
    } catch {
      result = 'failed';
    } finally {
      if (this.fills.get(fill.digest) === fill) this.fills.delete(fill.digest);
      if (!kept) {
        await fill.discard();
        this.options.release(fill);
      }
      this.options.ended(fill, kept ? 'kept' : result === 'corrupt' ? 'corrupt' : 'failed');
    }
  }

  /** Gives up every fill, and waits for those being kept. */
  async close(): Promise<void> {
    for (const fill of [...this.fills.values()]) {
      fill.abandon();
      if (!fill.busy && !fill.finishing) this.drop(fill);
    }
    await Promise.all(this.finishing);
  }
}
