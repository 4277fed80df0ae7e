import { cancelled, resourceExhausted } from '../../errors.js';
import { TimedWaiters } from '../../timed-waiters.js';
import type { Cancellation } from '../types.js';

export interface ReadSlotLimits {
  /** S3 responses Reads (and parked responses) may hold at once: below the read client's sockets. */
  readonly max: number;
  /** How long a Read waits for one before it fails with ResourceExhausted. */
  readonly waitMs: number;
  /** A Read whose client has taken nothing this long gives its response up to a Read that waits. */
  readonly idleMs: number;
  /**
   * A Read that has held its response this long gives it up to a Read that waits at its next
   * message its client has not yet taken, however briefly; 0 or none: never.
   */
  readonly turnMs?: number;
  /**
   * How long a Read that gave its response up (idle, or its turn over) waits for a new one when
   * its client takes again: 10 times `waitMs` unless given. It is part-way through its blob, and
   * with many Reads taking turns its wait can pass `waitMs` though every slot keeps moving.
   */
  readonly continueWaitMs?: number;
}

/** A Read holding an S3 response. */
export interface SlotHolder {
  /** performance.now() since which it waits for its client to take what it yielded; 0 while working. */
  readonly idleSince: number;
  /** Gives its response up (its slot is released by the slots); it opens a new one when its client takes again. */
  letGo(): void;
}

/**
 * The S3 responses Reads hold, daemon-wide. Each holds a socket of the read client for as long
 * as its client takes to read; past the client's pool a GET would queue for a socket until it
 * failed as if S3 were unreachable, and flip health. So a Read takes a slot first, below the pool,
 * and when none is free waits its turn (first come, first served), which comes when:
 * a parked response (an optimisation) is closed for it, at once; a Read whose client has taken
 * nothing for `idleMs` gives its response up (it opens a new one, waiting its turn like any
 * other, once its client takes again), so that a client leaving many Reads idle holds no
 * socket while others wait; a Read that has held its response for `turnMs` gives it up at a
 * moment it waits for its client (so slow clients take turns); or a Read ends. Past `waitMs` it
 * fails with ResourceExhausted. A slot freed goes to the waiting Read whose party (its client's
 * connection) holds fewest slots, the first come among those: one client's thousand Reads
 * waiting do not stand ahead of another client's one.
 */
export class ReadSlots {
  private inUse = 0;
  /** Each holder, when it took its slot, and for whom. */
  private readonly holders = new Map<SlotHolder, { takenAt: number; party: object | undefined }>();
  /** Slots held or granted, by party; a party holding none is not kept. */
  private readonly byParty = new Map<object | undefined, number>();
  private readonly waiting = new TimedWaiters<object | undefined>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly limits: ReadSlotLimits,
    /** Closes the oldest parked response (which releases its slot); false when none is parked. */
    private readonly closeOldestParked: () => boolean,
  ) {}

  /** A Read waits for a slot: a response that would be parked is better closed for it. */
  get wanted(): boolean {
    return this.waiting.length > 0;
  }

  get count(): number {
    return this.inUse;
  }

  /** Takes a slot for `holder`, waiting its turn when none is free. */
  async take(holder: SlotHolder, what: string, cancel: Cancellation | undefined, continuing = false): Promise<void> {
    const party = cancel?.party;
    if (this.inUse < this.limits.max && this.waiting.length === 0) {
      this.inUse++;
      this.countFor(party, 1);
      this.holders.set(holder, { takenAt: performance.now(), party });
      return;
    }
    const { max } = this.limits;
    const waitMs = continuing ? (this.limits.continueWaitMs ?? 10 * this.limits.waitMs) : this.limits.waitMs;
    const turn = this.waiting.wait(
      party,
      waitMs,
      () =>
        resourceExhausted(
          `${what}: waited ${Math.round(waitMs / 1000)}s for one of the ${max} S3 responses Reads may hold at once, daemon-wide, all held by Reads still sending`,
        ),
      { unref: true, signal: cancel?.signal, cancelled: () => cancelled(`${what}: the client cancelled the Read while it waited for an S3 response`) },
    );
    this.makeRoom();
    // a slot granted is handed over with its count, its party's counted at the grant
    await turn;
    this.holders.set(holder, { takenAt: performance.now(), party });
  }

  /** The holder's response is closed: its slot goes to a waiting Read (see the class), if any. */
  release(holder: SlotHolder): void {
    const held = this.holders.get(holder);
    if (!held) return;
    this.holders.delete(holder);
    this.countFor(held.party, -1);
    if (!this.grantNext()) this.inUse--;
    if (this.waiting.length === 0) this.stopSweeping();
  }

  close(): void {
    this.stopSweeping();
  }

  /** Slots `party` holds or was granted. */
  heldBy(party: object | undefined): number {
    return this.byParty.get(party) ?? 0;
  }

  /**
   * Grants a slot to the waiting Read whose party holds fewest, counted now: a release that lets
   * several go at once (letIdleGo) spreads them before any granted Read runs on.
   */
  private grantNext(): boolean {
    const parties = this.waiting.values();
    if (parties.length === 0) return false;
    let best = 0;
    let fewest = Number.POSITIVE_INFINITY;
    const seen = new Set<object | undefined>();
    for (let i = 0; i < parties.length && fewest > 0; i++) {
      if (seen.has(parties[i])) continue;
      seen.add(parties[i]);
      const held = this.heldBy(parties[i]);
      if (held < fewest) [best, fewest] = [i, held];
    }
    this.countFor(parties[best], 1);
    return this.waiting.grantAt(best);
  }

  private countFor(party: object | undefined, change: number): void {
    const held = (this.byParty.get(party) ?? 0) + change;
    if (held > 0) this.byParty.set(party, held);
    else this.byParty.delete(party);
  }

  private makeRoom(): void {
    while (this.waiting.length > 0 && this.closeOldestParked()) {
      // each parked response closed hands its slot to the first waiting
    }
    this.letIdleGo();
    if (this.waiting.length > 0 && !this.sweeper) {
      this.sweeper = setInterval(() => this.letIdleGo(), Math.max(50, Math.min(this.limits.idleMs, this.limits.turnMs || Number.POSITIVE_INFINITY) / 4));
      this.sweeper.unref();
    }
  }

  /**
   * Reads give their responses up, one a waiting Read: first those whose clients have taken
   * nothing for `idleMs`, the longest idle first; then those that have held theirs for `turnMs`
   * and wait for their client this moment, the longest held first. Without turns, Reads whose
   * clients each took a message every second or so (never idle for `idleMs`) held every response
   * for as long as they read, and a Read waiting behind them failed after `waitMs`.
   */
  private letIdleGo(): void {
    if (this.waiting.length === 0) return this.stopSweeping();
    const now = performance.now();
    const idleBefore = now - this.limits.idleMs;
    const turnBefore = this.limits.turnMs ? now - this.limits.turnMs : Number.NEGATIVE_INFINITY;
    const idle: SlotHolder[] = [];
    const turnDone: [SlotHolder, number][] = [];
    for (const [holder, { takenAt }] of this.holders) {
      if (holder.idleSince <= 0) continue;
      if (holder.idleSince <= idleBefore) idle.push(holder);
      else if (takenAt <= turnBefore) turnDone.push([holder, takenAt]);
    }
    idle.sort((a, b) => a.idleSince - b.idleSince);
    turnDone.sort((a, b) => a[1] - b[1]);
    for (const holder of [...idle, ...turnDone.map(([h]) => h)].slice(0, this.waiting.length)) {
      holder.letGo();
      this.release(holder);
    }
  }

  private stopSweeping(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
