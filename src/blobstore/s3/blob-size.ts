import { invalidArgument } from '../../errors.js';

/** S3 takes at most this many parts an upload: past them it refuses the next part. */
const MAX_PARTS = 10_000;

/**
 * How large an upload's blob may be and where its parts end: from its part size (fixed by its
 * first checkpoint) and the size its client declared, if any.
 */
export class BlobSize {
  constructor(
    readonly partBytes: number,
    /** The size the client declared; 0: none. */
    private readonly declared: number,
  ) {
    if (declared > this.largest) throw invalidArgument(`a blob of ${declared} bytes is ${this.tooLarge()}`);
  }

  get largest(): number {
    return MAX_PARTS * this.partBytes;
  }

  /** Refuses bytes that would take the blob past what S3's parts hold, before any is taken. */
  check(accepted: number, more: number): void {
    if (accepted + more > this.largest) throw invalidArgument(`a blob past ${this.largest} bytes is ${this.tooLarge()}`);
  }

  /**
   * Where the part being filled ends by the declared size, given `buffered` bytes in it and
   * `accepted` of the blob taken. Past that size (a client may raise it on any message) nothing
   * says, so a whole part: growing only to what each WRITE needs copied the part on every WRITE.
   */
  partEnd(buffered: number, accepted: number): number {
    if (this.declared <= 0 || accepted >= this.declared) return this.partBytes;
    return Math.min(this.partBytes, buffered + this.declared - accepted);
  }

  private tooLarge(): string {
    return `more than S3's 10,000 parts of ${this.partBytes} bytes (--part-size) hold; the daemon's --part-size must be larger for it`;
  }
}
