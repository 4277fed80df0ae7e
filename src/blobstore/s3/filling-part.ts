import type { SpilledParts } from './spilled-parts.js';
import type { UploadContext } from './upload-context.js';

/** What the upload tells the part it fills about where that part ends. */
export interface PartSizing {
  /** Bytes of a whole part. */
  readonly whole: number;
  /** Where the part ends by the size the client declared, given `buffered` bytes in it. */
  end(buffered: number): number;
  /** The stream has filled a part already: it is sending, not trickling. */
  proven(): boolean;
}

/**
 * The part an upload is filling: a buffer, with budget from --max-buffer for all of it, that
 * grows as bytes arrive, or a file in the spill directory while no stream writes. A stream holds
 * budget for about what it sent, not for a part it may never fill (one that sent a byte and went
 * quiet held 8 MiB of --max-buffer until it timed out).
 */
export class FillingPart {
  /** The buffer: its first `buffered` bytes are the part's. */
  buffer: Buffer | undefined;
  buffered = 0;
  private reserved = 0;

  constructor(
    private readonly context: UploadContext,
    private readonly spilled: SpilledParts,
    private readonly sizing: PartSizing,
    /** Told when the part starts and stops holding budget (idle holders give way: idle-holders.ts). */
    private readonly holds: (yes: boolean) => void = () => undefined,
  ) {}

  /** Budget reserved for `buffer`. */
  get held(): number {
    return this.reserved;
  }

  private set held(bytes: number) {
    const was = this.reserved > 0;
    this.reserved = bytes;
    if (was !== bytes > 0) this.holds(bytes > 0);
  }

  /** Room for `incoming` more bytes (up to a whole part), and budget for the whole buffer. */
  async makeRoom(incoming: number, signal: AbortSignal | undefined): Promise<void> {
    const needed = Math.min(this.sizing.whole, this.buffered + incoming);
    const capacity = this.buffer?.length ?? 0;
    if (needed <= capacity) return;
    // A client may send more than it first declared (containerd takes a larger total on any
    // message): the part then grows past the declared end. A stream that has filled a part
    // already takes its next parts whole at once, rather than waiting in line at each doubling
    // (with the budget full, each would also go through the spill directory).
    const end = this.sizing.end(this.buffered);
    const size = Math.max(needed, this.sizing.proven() ? end : Math.min(end, this.context.parts.sizeFor(needed, capacity)));
    if (this.held === 0) {
      // holding nothing, it may wait in line without holding up anyone
      this.held = await this.context.budget.acquire(size, signal);
    } else if (this.context.budget.tryAcquire(size - this.held)) {
      this.held = size;
    } else {
      await this.waitHoldingNothing(needed, size, signal);
      return;
    }
    this.resize(size);
  }

  /**
   * The part cannot grow now. Waiting for more while holding what it has could wait forever:
   * every stream may hold half a part and wait for the rest. So its bytes go to disk and its
   * budget back, and it waits in line, holding nothing, for the rest of its part at once; once
   * granted, it can finish the part without waiting again. With no room on disk it waits holding
   * what it has (the line's time limit still ends that).
   */
  private async waitHoldingNothing(needed: number, size: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.buffered > 0) {
      try {
        await this.spilled.keepUnfinished(this.buffer!.subarray(0, this.buffered));
      } catch {
        this.held += await this.context.budget.acquire(size - this.held, signal);
        this.resize(size);
        return;
      }
    }
    this.discard();
    if (this.spilled.hasUnfinished) {
      await this.unspill(signal, needed);
      return;
    }
    const whole = Math.max(needed, this.sizing.end(0));
    this.held = await this.context.budget.acquire(whole, signal);
    this.resize(whole);
  }

  /**
   * Takes a spilled part back into memory, with budget for it, before more bytes join it: a
   * buffer as for bytes just sent, or with `needed` (it had to wait for room) the rest of its part.
   */
  async unspill(signal: AbortSignal | undefined, needed = 0): Promise<void> {
    if (!this.spilled.hasUnfinished) return;
    const length = this.spilled.unfinishedLength;
    const end = this.sizing.end(length);
    const size = needed > 0 ? Math.max(needed, end) : Math.max(length, Math.min(end, this.context.parts.sizeFor(length)));
    this.releaseHeld();
    this.held = await this.context.budget.acquire(size, signal);
    const bytes = await this.spilled.takeUnfinished().catch((err: unknown) => {
      // nothing taken: the budget goes back, and a retry starts clean
      this.releaseHeld();
      throw err;
    });
    if (!bytes) {
      // dropped while it waited for budget (the upload let go): nothing to hold it for
      this.releaseHeld();
      return;
    }
    this.resize(size);
    bytes.copy(this.buffer!, 0);
    this.buffered = bytes.length;
  }

  /** The bytes go to disk, and the buffer and budget back: a suspended ingest holds no memory. */
  async spill(): Promise<void> {
    if (!this.spilled.hasUnfinished && this.buffered > 0) await this.spilled.keepUnfinished(this.buffer!.subarray(0, this.buffered));
    this.discard();
  }

  /** The part filled so far and the buffer it sits in, with the buffer's budget; the next byte starts a new part. */
  take(): { body: Buffer; buffer: Buffer | undefined; reservation: number } {
    const buffer = this.buffer;
    const body = buffer ? buffer.subarray(0, this.buffered) : Buffer.alloc(0);
    const reservation = this.held;
    this.buffer = undefined;
    this.buffered = 0;
    this.held = 0;
    return { body, buffer, reservation };
  }

  /** Gives the buffer and its budget back, dropping what it holds. */
  discard(): void {
    const { buffer, reservation } = this.take();
    if (buffer) this.context.parts.give(buffer);
    this.context.budget.release(reservation);
  }

  /** The buffer becomes `size` bytes, keeping what it holds. */
  private resize(size: number): void {
    const grown = this.context.parts.take(size);
    if (this.buffer) {
      this.buffer.copy(grown, 0, 0, this.buffered);
      this.context.parts.give(this.buffer);
    }
    this.buffer = grown;
  }

  private releaseHeld(): void {
    this.context.budget.release(this.held);
    this.held = 0;
  }
}
