/**
 * Callers waiting for something a limit holds back (buffer bytes, a turn), first come, first
 * served, each for a bounded time: past it, it stops waiting with the error its owner names,
 * rather than waiting forever behind holders whose clients went quiet.
 */
export class TimedWaiters<T> {
  private readonly queue: { value: T; grant(): void }[] = [];

  get length(): number {
    return this.queue.length;
  }

  /** What the first waiting asks for. */
  get first(): T | undefined {
    return this.queue[0]?.value;
  }

  /**
   * Waits until granted, or rejects with `timedOut()` after `waitMs`. `unref` lets the process
   * exit past a waiter (a daemon stopping does not wait for work that has not begun).
   */
  wait(value: T, waitMs: number, timedOut: () => Error, options: { unref?: boolean } = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry = {
        value,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.queue.splice(this.queue.indexOf(entry), 1);
        reject(timedOut());
      }, waitMs);
      if (options.unref) timer.unref();
      this.queue.push(entry);
    });
  }

  /** Grants the first waiting; false when nobody waits. */
  grantFirst(): boolean {
    const next = this.queue.shift();
    next?.grant();
    return next !== undefined;
  }
}
