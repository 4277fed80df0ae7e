import type { Readable } from 'node:stream';

/**
 * Bytes parked GET responses may have read ahead, all together: a Read that continues one finds
 * its first MiB already here instead of waiting for S3 to start sending again.
 */
export class ReadAheadBudget {
  used = 0;
  constructor(
    readonly perRead: number,
    readonly total: number,
  ) {}
}

/** One GET response being consumed Read by Read. */
export class OpenRead {
  private readonly iterator: AsyncIterator<Buffer>;
  /** Bytes taken from the response and not yet yielded, in order. */
  private ahead: Buffer[] = [];
  private aheadBytes = 0;
  private pulling: Promise<void> | undefined;
  private ended = false;
  private failure: unknown;
  private closed = false;

  constructor(
    readonly digest: string,
    public position: number,
    private readonly body: Readable,
    private readonly budget: ReadAheadBudget,
    /** The domain error for the response breaking off (a reset, a socket idle too long). */
    private readonly brokeOff: (err: unknown) => Error,
  ) {
    this.iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Yields exactly `length` bytes, then hands itself back through `done` for reuse. */
  async *take(length: number, done: () => void): AsyncGenerator<Buffer> {
    let remaining = length;
    let complete = false;
    try {
      while (remaining > 0) {
        let chunk = this.ahead.shift();
        if (chunk) {
          this.aheadBytes -= chunk.length;
          this.budget.used -= chunk.length;
        } else {
          // One reader of the response at a time: what was read ahead is served while the
          // read-ahead goes on (it only appends), and the response itself waits for it. A
          // small Read continuing a parked one so never waits for S3's next bytes.
          if (this.pulling) {
            await this.pulling;
            continue;
          }
          if (this.failure) throw this.failure;
          if (this.ended) break;
          const next = await this.iterator.next().catch((err: unknown) => {
            throw this.brokeOff(err);
          });
          if (next.done) break;
          chunk = next.value;
        }
        if (chunk.length > remaining) {
          this.ahead.unshift(chunk.subarray(remaining));
          this.aheadBytes += chunk.length - remaining;
          this.budget.used += chunk.length - remaining;
          chunk = chunk.subarray(0, remaining);
        }
        remaining -= chunk.length;
        this.position += chunk.length;
        yield chunk;
      }
      complete = remaining === 0;
    } finally {
      if (complete) done();
      else this.close();
    }
  }

  /** While parked, reads on into memory, within the per-read and the daemon-wide bound. */
  readAhead(): void {
    if (this.pulling || this.ended || this.closed) return;
    this.pulling = (async () => {
      while (!this.closed && this.aheadBytes < this.budget.perRead && this.budget.used < this.budget.total) {
        const next = await this.iterator.next();
        if (next.done) {
          this.ended = true;
          return;
        }
        if (this.closed) return;
        this.ahead.push(next.value);
        this.aheadBytes += next.value.length;
        this.budget.used += next.value.length;
      }
    })()
      .catch((err: unknown) => {
        this.failure = this.brokeOff(err);
      })
      .finally(() => {
        this.pulling = undefined;
      });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.used -= this.aheadBytes;
    this.ahead = [];
    this.aheadBytes = 0;
    this.body.destroy();
  }
}
