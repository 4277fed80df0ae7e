import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where uploads whose stream went away keep the bytes of their unfinished part, so that an
 * interrupted ingest holds no memory. Private to this process (mode 0700), made on first use,
 * removed when the store closes; a spilled part is at most one part size.
 */
export class SpillDir {
  private made: Promise<void> | undefined;
  readonly path: string;

  constructor(parent = tmpdir()) {
    this.path = join(parent, `s3-content-store-spill-${process.pid}-${randomUUID().slice(0, 8)}`);
  }

  /** A path for a new spill file. */
  async file(): Promise<string> {
    this.made ??= mkdir(this.path, { recursive: true, mode: 0o700 }).then(() => undefined);
    await this.made;
    return join(this.path, randomUUID());
  }

  async close(): Promise<void> {
    if (this.made) await rm(this.path, { recursive: true, force: true });
  }
}
