import { cancelled, resourceExhausted } from '../errors.js';
import { TimedWaiters } from '../timed-waiters.js';

/**
 * Record Puts a daemon runs at once, and those waiting for a turn (record Gets, which hold a
 * record each, take turns of their own from a second instance). A running Put holds its config,
 * what checking it builds and what each of its names held before (bounded in bytes daemon-wide,
 * records/store.ts), a waiting one its config. How many Puts a daemon holds at all, waiting for their names included,
 * is bounded beside it (records/store.ts), so memory stays bounded however many Puts clients send.
 *
 * Waiting rather than refusing at once: BuildKit fails a build whose cache export cannot write its
 * record, and the builds of one CI run tend to finish, and export, together; a turn a few seconds
 * later is what their users expect. A Put that waits too long, or finds the queue full, gets
 * ResourceExhausted naming the limit, so the build says why.
 */
export class PutTurns {
  private running = 0;
  private readonly waiting = new TimedWaiters<undefined>();

  constructor(
    readonly max = 4,
    readonly maxWaiting = 16,
    private readonly waitMs = 60_000,
    /** What the turns are for, in messages: record Gets take turns of their own. */
    private readonly call = 'Put',
  ) {}

  /**
   * Runs `body` in a turn of its own, waiting (first come, first served) for one if need be; a
   * Put whose client goes away (`signal`) while it waits gives its place up.
   */
  async run<T>(body: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.take(signal);
    try {
      return await body();
    } finally {
      this.give();
    }
  }

  private async take(signal: AbortSignal | undefined): Promise<void> {
    if (this.running < this.max && this.waiting.length === 0) {
      this.running++;
      return;
    }
    if (this.waiting.length >= this.maxWaiting) {
      throw resourceExhausted(
        `cache record ${this.call}: ${this.max} ${this.call}s run at once and ${this.waiting.length} wait for a turn, the most this daemon allows; retry later`,
      );
    }
    await this.waiting.wait(
      undefined,
      this.waitMs,
      () => resourceExhausted(`cache record ${this.call}: no turn within ${this.waitMs / 1000}s among the ${this.max} ${this.call}s this daemon runs at once; retry later`),
      // a daemon stopping does not wait for a Put that has not begun
      { unref: true, signal, cancelled: () => cancelled(`cache record ${this.call}: the client cancelled it while it waited for a turn`) },
    );
  }

  /** The turn passes to the first waiting, or is free again. */
  private give(): void {
    if (!this.waiting.grantFirst()) this.running--;
  }
}
