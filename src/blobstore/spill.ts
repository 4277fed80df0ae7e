import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resourceExhausted } from '../errors.js';

/**
 * Where uploads whose stream went away keep the bytes of their unfinished part, so that an
 * interrupted ingest holds no memory. Private to this process (mode 0700), made on first use,
 * removed when the store closes; a spilled part is at most one part size. The bytes in it are
 * bounded: one client interrupting ingest after ingest must not fill a disk others share.
 */
export class SpillDir {
  private made: Promise<void> | undefined;
  private used = 0;
  readonly path: string;

  constructor(
    parent = tmpdir(),
    /** Bytes all spilled parts together may take. */
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    this.path = join(parent, `s3-content-store-spill-${process.pid}-${randomUUID().slice(0, 8)}`);
  }

  /** Counts `bytes` about to be written here; refuses when they would pass the bound. */
  reserve(bytes: number): void {
    if (this.used + bytes > this.maxBytes) {
      throw resourceExhausted(`the spill directory holds ${this.used} bytes of interrupted uploads, at most ${this.maxBytes}`);
    }
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  get bytesUsed(): number {
    return this.used;
  }

  /** A path for a new spill file. */
  async file(): Promise<string> {
    // a failed make is tried again by the next spill (the disk may have room by then)
    this.made ??= mkdir(this.path, { recursive: true, mode: 0o700 }).then(
      () => undefined,
      (err: unknown) => {
        this.made = undefined;
        throw err;
      },
    );
    await this.made;
    return join(this.path, randomUUID());
  }

  async close(): Promise<void> {
    // only a directory this store made: removing one it could not make fails the store's close
    const made = this.made && (await this.made.then(() => true, () => false));
    if (made) await rm(this.path, { recursive: true, force: true });
  }
}
