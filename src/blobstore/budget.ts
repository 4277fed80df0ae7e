import { StoreError } from '../errors.js';

/**
 * Bytes of upload buffers the whole daemon may hold at once. Uploads reserve before they
 * buffer and wait when the budget is spent, which stops reading from their clients: memory
 * stays bounded however many ingests run. A reservation that cannot be had in `waitMs` fails
 * with resource-exhausted instead of waiting forever behind ingests whose clients went quiet.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: { bytes: number; grant: () => void }[] = [];

  constructor(
    readonly limit: number,
    private readonly waitMs = 60_000,
  ) {}

  get inUse(): number {
    return this.used;
  }

  async acquire(bytes: number): Promise<number> {
    const want = Math.min(bytes, this.limit);
    if (this.waiting.length === 0 && this.used + want <= this.limit) {
      this.used += want;
      return want;
    }
    await new Promise<void>((resolve, reject) => {
      const entry = {
        bytes: want,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        reject(
          new StoreError(
            'resource-exhausted',
            `the daemon's upload buffers (--max-buffer ${this.limit} bytes) stayed full for ${this.waitMs / 1000}s; retry later`,
          ),
        );
      }, this.waitMs);
      this.waiting.push(entry);
    });
    return want;
  }

  release(bytes: number): void {
    this.used -= bytes;
    // first come, first served: a large request is not starved by a stream of small ones
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.limit) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }
}
