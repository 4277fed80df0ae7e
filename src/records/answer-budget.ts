import { ByteBudget } from '../blobstore/budget.js';
import type { BudgetHolder } from '../blobstore/idle-holders.js';

/** A record's answer handed to the connection, on its way to its client. */
export interface AnswerOnItsWay {
  /** Settles once it has left the daemon (or never will). */
  readonly delivered: Promise<void>;
  /** Gives it up: its call ends without it reaching its client, and its bytes go. */
  cut(): void;
}

/**
 * An answer its client has not taken whole this long after it was handed over is cut while a Get
 * waits for room: under the 60 s a Get waits before it fails, so the waiting Get gets its room
 * first. It counts from the hand-over, not from the client's last progress, which the connection
 * does not tell: a client taking an 8 MiB answer at under 280 KB/s is cut too, while others wait.
 */
const UNTAKEN_MS = 30_000;

/**
 * Bytes of records read for Gets and not yet taken by their clients (--max-read-buffer). Each
 * answer holds its bytes until delivered; while another Get waits for room, answers not yet
 * taken whole 30 s after they were handed over are cut, the oldest first. Before, a client that took
 * none of its answers held them until --stream-idle-timeout (10 minutes), and sixteen such Gets
 * of 8 MiB records (the most a Put takes) held the whole budget, failing every other client's Get.
 */
export class AnswerBudget {
  private readonly budget: ByteBudget;

  constructor(bytes: number) {
    this.budget = new ByteBudget(
      bytes,
      60_000,
      {
        exhausted: (limit, seconds) =>
          `cache record Get: the answers of Gets not yet taken by their clients held ${limit} bytes (--max-read-buffer) for ${seconds}s; retry later`,
        cancelled: 'cache record Get: the client cancelled it while it waited for room for its answer',
      },
      UNTAKEN_MS,
    );
  }

  acquire(bytes: number, signal?: AbortSignal): Promise<number> {
    return this.budget.acquire(bytes, signal);
  }

  release(bytes: number): void {
    this.budget.release(bytes);
  }

  /** The answer holding `held` bytes is handed over: they count until it is delivered, or cut. */
  handOver(held: number, answer: AnswerOnItsWay | undefined): void {
    if (!answer) return this.budget.release(held);
    const holder: BudgetHolder = {
      idleSince: performance.now(),
      holding: held,
      giveBack: () => {
        answer.cut();
        return true;
      },
    };
    this.budget.holders?.add(holder);
    const done = () => {
      this.budget.holders?.delete(holder);
      this.budget.release(held);
    };
    void answer.delivered.then(done, done);
  }
}
