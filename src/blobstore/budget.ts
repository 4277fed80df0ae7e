import { StoreError, cancelled } from '../errors.js';
import { TimedWaiters } from '../timed-waiters.js';
import { IdleHolders } from './idle-holders.js';

/** What a budget's refusals say: the budget is named, and what its waiters were doing. */
export interface BudgetMessages {
  exhausted(limit: number, waitSeconds: number): string;
  cancelled: string;
}

const UPLOAD_BUFFERS: BudgetMessages = {
  exhausted: (limit, seconds) => `the daemon's upload buffers (--max-buffer ${limit} bytes) stayed full for ${seconds}s; retry later`,
  cancelled: 'the client cancelled the write while it waited for upload buffer space (--max-buffer)',
};

/**
 * Bytes buffers may hold at once, daemon-wide (upload parts; record answers not yet taken).
 * Holders reserve before they buffer and wait when the budget is spent, which stops reading
 * from their clients: memory stays bounded however many run. A reservation that cannot be had
 * in `waitMs` fails with resource-exhausted instead of waiting forever behind holders whose
 * clients went quiet; with `idleHolderMs`, idle holders give way meanwhile.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting = new TimedWaiters<number>();

  constructor(
    readonly limit: number,
    private readonly waitMs = 60_000,
    private readonly messages: BudgetMessages = UPLOAD_BUFFERS,
    /** With it, holders idle this long give way while reservations wait (see `holders`). */
    idleHolderMs?: number,
  ) {
    this.holders = idleHolderMs === undefined ? undefined : new IdleHolders(idleHolderMs, () => this.waitedFor);
  }

  /** Those holding some of the budget, of which the idle give way to reservations that wait (idle-holders.ts). */
  readonly holders: IdleHolders | undefined;

  /** Bytes reservations are waiting for. */
  get waitedFor(): number {
    let sum = 0;
    for (const want of this.waiting.values()) sum += want;
    return sum;
  }

  get inUse(): number {
    return this.used;
  }

  /**
   * Reserves `bytes` (at most the whole budget), waiting first come, first served for them. A
   * wait whose `signal` aborts (the client went away) gives its place up at once, cancelled.
   */
  async acquire(bytes: number, signal?: AbortSignal): Promise<number> {
    const want = Math.min(bytes, this.limit);
    if (this.tryAcquire(want)) return want;
    const turn = this.waiting.wait(
      want,
      this.waitMs,
      () => {
        // one that waited for more than is free may have held up smaller ones behind it that fit
        queueMicrotask(() => this.release(0));
        return new StoreError('resource-exhausted', this.messages.exhausted(this.limit, this.waitMs / 1000));
      },
      {
        signal,
        cancelled: () => {
          // as for a timeout: those behind it may fit now
          queueMicrotask(() => this.release(0));
          return cancelled(this.messages.cancelled);
        },
      },
    );
    this.holders?.short();
    await turn;
    return want;
  }

  /** Reserves `bytes` only if that needs no wait (nobody is waiting and they fit). */
  tryAcquire(bytes: number): boolean {
    if (this.waiting.length > 0 || this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used -= bytes;
    // first come, first served: a large request is not starved by a stream of small ones
    for (let next = this.waiting.first; next !== undefined && this.used + next <= this.limit; next = this.waiting.first) {
      this.used += next;
      this.waiting.grantFirst();
    }
  }
}
