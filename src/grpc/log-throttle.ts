/**
 * Warnings of one kind, the first of each period in full and the rest as one count at its end;
 * a period begins with the first warning after the last one ended.
 * While S3 is silent every call fails at once Unavailable: a warning with its stack for each was
 * the clients' own retry rate in log lines (each waiting writer of each builder about once a
 * second), and a log destination slow to take them holds the daemon's one thread.
 * Own code: a rate limit that reports what it dropped is a few lines, none of the loggers' own.
 */
export class LogThrottle {
  private loggedAt = Number.NEGATIVE_INFINITY;
  private unlogged = 0;
  private latest = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly periodMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /**
   * Whether the warning `message` goes to the log in full. One that does not is counted, and
   * `report` hears the count, with the latest message, once the period it fell in ends.
   */
  admit(message: string, report: (unlogged: number, latest: string) => void): boolean {
    const now = this.clock();
    if (this.timer === undefined && now - this.loggedAt >= this.periodMs) {
      this.loggedAt = now;
      return true;
    }
    this.unlogged++;
    this.latest = message;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const { unlogged, latest } = this;
      this.unlogged = 0;
      this.latest = '';
      // the period is over: the next warning, in full, begins another (a cause that changed
      // meanwhile shows with its own stack within a period)
      report(unlogged, latest);
    }, Math.max(0, this.loggedAt + this.periodMs - now));
    this.timer.unref();
    return false;
  }
}
