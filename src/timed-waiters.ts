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

  /** What each waiting asks for, first come first. */
  values(): T[] {
    return this.queue.map((entry) => entry.value);
  }

  /** What the first waiting asks for. */
  get first(): T | undefined {
    return this.queue[0]?.value;
  }

  /**
   * Waits until granted, or rejects with `timedOut()` after `waitMs`. `unref` lets the process
   * exit past a waiter (a daemon stopping does not wait for work that has not begun). A waiter
   * whose `signal` aborts (its client went away) leaves the queue at once, rejecting with
   * `cancelled()`, so its place goes to the next.
   */
  wait(
    value: T,
    waitMs: number,
    timedOut: () => Error,
    options: { unref?: boolean; signal?: AbortSignal | undefined; cancelled?: () => Error } = {},
  ): Promise<void> {
    const { signal } = options;
    return new Promise<void>((resolve, reject) => {
      const leave = (err: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.queue.splice(this.queue.indexOf(entry), 1);
        reject(err);
      };
      const onAbort = () => leave(options.cancelled?.() ?? new Error('the wait was cancelled'));
      const entry = {
        value,
        grant: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const timer = setTimeout(() => leave(timedOut()), waitMs);
      if (options.unref) timer.unref();
      this.queue.push(entry);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Grants the first waiting; false when nobody waits. */
  grantFirst(): boolean {
    const next = this.queue.shift();
    next?.grant();
    return next !== undefined;
  }

  /** Grants the waiting at `index` (of values()); false when there is none there. */
  grantAt(index: number): boolean {
    const [next] = index >= 0 ? this.queue.splice(index, 1) : [];
    next?.grant();
    return next !== undefined;
  }
}
