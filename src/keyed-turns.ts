import { cancelled, resourceExhausted } from './errors.js';

/**
 * Calls that left the queue (cancelled, or out of time) stay links of its chain until those
 * before them are done: a client calling and cancelling in a loop while the first call hangs
 * could otherwise grow it without end. At most this many times the queue's bound linger.
 */
const LINGERING = 8;

/**
 * Calls on one key (a namespace, a blob's hold) run one after another, in order: each reads
 * what it changes and writes it back whole, so two at once would lose one's change. At most
 * `maxQueued` wait on one key and each waits at most `waitMs` for those before it; past either,
 * ResourceExhausted naming the subject, so a client hammering one key holds neither memory nor
 * the key for long. Keys with nothing queued take no memory.
 */
export class KeyedTurns {
  private readonly tails = new Map<string, { tail: Promise<void>; queued: number; lingering: number }>();

  constructor(
    private readonly maxQueued = 8,
    private readonly waitMs = 60_000,
  ) {}

  /** `signal`: the caller went away; one still waiting gives its place up (CANCELLED). */
  async run<T>(key: string, subject: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const entry = this.tails.get(key) ?? { tail: Promise.resolve(), queued: 0, lingering: 0 };
    if (entry.queued >= this.maxQueued || entry.lingering >= LINGERING * this.maxQueued) {
      throw resourceExhausted(`${subject}: ${entry.queued} calls changing it are in progress, the most this daemon queues for one; retry later`);
    }
    const before = entry.tail;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    entry.tail = mine;
    entry.queued++;
    this.tails.set(key, entry);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const turn = await Promise.race([
        before.then(() => 'ready' as const),
        new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), this.waitMs);
          timer.unref();
        }),
        new Promise<'cancelled'>((resolve) => {
          onAbort = () => resolve('cancelled');
          if (signal?.aborted) onAbort();
          else signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      if (turn === 'late') throw resourceExhausted(`${subject}: still being changed by earlier calls after ${this.waitMs / 1000}s; retry later`);
      if (turn === 'cancelled') throw cancelled(`${subject}: the client cancelled the call while it waited for earlier ones`);
      return await work();
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      entry.queued--;
      // One that gave up waiting hands the key on only once those before it are done; until
      // then it still takes a link of the chain (see LINGERING).
      entry.lingering++;
      void before.then(() => {
        entry.lingering--;
        release();
        if (this.tails.get(key) === entry && entry.tail === mine) this.tails.delete(key);
      });
    }
  }
}
