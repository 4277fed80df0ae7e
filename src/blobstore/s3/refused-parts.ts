import type { SpilledParts } from './spilled-parts.js';
import type { OutgoingPart, UploadContext } from './upload-context.js';

/**
 * Parts of one upload S3 did not take (it was away), kept with their budget to be sent again
 * once it answers, or set aside on disk while nobody writes. `changed` is told whenever the
 * parts held in memory come or go (the budget's idle holders follow it).
 */
export class RefusedParts {
  private parts: OutgoingPart[] = [];

  constructor(
    private readonly context: UploadContext,
    private readonly spilled: SpilledParts,
    private readonly changed: () => void,
  ) {}

  get count(): number {
    return this.parts.length;
  }

  /** Budget the parts in memory hold. */
  held(): number {
    return this.parts.reduce((n, p) => n + p.reservation, 0);
  }

  add(part: OutgoingPart): void {
    this.parts.push(part);
    this.changed();
  }

  /** The parts in memory, handed over (to be sent again) and no longer held here. */
  takeAll(): OutgoingPart[] {
    const all = this.parts.splice(0);
    this.changed();
    return all;
  }

  /** The parts in memory let go of: their budget and buffers back. */
  drop(): void {
    for (const part of this.parts.splice(0)) this.free(part);
    this.changed();
  }

  /**
   * To disk one at a time, each leaving memory only once its file is written: a full disk keeps
   * the rest in memory rather than losing them.
   */
  async spill(): Promise<void> {
    try {
      while (this.parts.length > 0) {
        const part = this.parts[0]!;
        await this.spilled.keepRefused(part.partNumber, part.body);
        this.parts.shift();
        this.free(part);
      }
    } finally {
      this.changed();
    }
  }

  /** Takes the next part set aside on disk back into memory (with budget) to be sent again. */
  async load(length: number, signal: AbortSignal | undefined): Promise<OutgoingPart> {
    const reservation = await this.context.budget.acquire(length, signal);
    const buffer = this.context.parts.take(length);
    const body = buffer.subarray(0, length);
    try {
      const partNumber = await this.spilled.takeRefused(body);
      return { partNumber, body, buffer, reservation };
    } catch (err) {
      this.context.budget.release(reservation);
      this.context.parts.give(buffer);
      throw err;
    }
  }

  private free(part: OutgoingPart): void {
    this.context.budget.release(part.reservation);
    this.context.parts.give(part.buffer);
  }
}
