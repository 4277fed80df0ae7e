import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { startOver } from '../errors.js';
import { isNoEntry } from './fs-docs.js';
import { localError, type FsSync } from './fs-files.js';
import type { Checkpoint, Upload, UploadHandle, UploadOptions } from './types.js';

/** How often an upload's file is synced and offered as a checkpoint. */
const CHECKPOINT_BYTES = 8 * 1024 * 1024;

/** An upload to a local directory: a file in its staging directory, renamed to the blob's path at commit. */
export class FsUpload implements Upload {
  readonly checkpointBytes = CHECKPOINT_BYTES;
  /** The file can be read back whenever. */
  readonly rereadable = true;
  private fh: Promise<FileHandle> | undefined;
  /** Bytes in the file. */
  private size: number;
  private checkpointed: number;
  /**
   * The file was made (or found, continuing a checkpoint). From then on it is only ever opened
   * as it stands: made anew (or cut back to a checkpoint) after a failed commit, it would be
   * renamed under the digest with bytes other than the ones verified.
   */
  private made = false;
  /** Renamed to the blob's path, or discarded: no file of this upload is left to name. */
  private ended = false;
  private readonly onDurable: ((checkpoint: Checkpoint) => void) | undefined;
  private readonly resumeAt: number | undefined;

  constructor(
    private readonly path: string,
    private readonly finalPath: (digest: string) => string,
    options: UploadOptions,
    /** The store's root, which error messages name paths relative to. */
    private readonly root: string,
    private readonly sync: FsSync,
  ) {
    this.onDurable = options.onDurable;
    this.resumeAt = options.resume?.offset;
    this.size = this.resumeAt ?? 0;
    this.checkpointed = this.size;
  }

  /** `announce`: whether a file made now is reported (onDurable at offset 0). */
  private file(announce = true): Promise<FileHandle> {
    if (this.fh) return this.fh;
    const opening = this.made ? this.reopen(this.size) : this.resumeAt === undefined ? this.create(announce) : this.reopen(this.resumeAt);
    this.fh = opening;
    // a failed open is tried again by the next call rather than answered for good
    opening.catch(() => {
      if (this.fh === opening) this.fh = undefined;
    });
    return opening;
  }

  private async create(announce: boolean): Promise<FileHandle> {
    const fh = await open(this.path, 'w');
    this.made = true;
    try {
      // a checkpoint's record names the file: its entry must outlive a power loss as the record does
      await this.sync.dir(dirname(this.path));
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    if (announce) this.onDurable?.({ offset: 0, handle: this.handle()! });
    return fh;
  }

  /** Continues at `offset` (a checkpoint, or where this upload's bytes end): anything written after it is cut off. */
  private async reopen(offset: number): Promise<FileHandle> {
    const fh = await open(this.path, 'r+').catch((err: unknown) => {
      if (isNoEntry(err)) throw startOver(`upload ${basename(this.path)} is gone; write the content again from offset 0`);
      throw err;
    });
    try {
      if ((await fh.stat()).size < offset) {
        throw startOver(`upload ${basename(this.path)} holds less than its checkpoint; write the content again from offset 0`);
      }
      await fh.truncate(offset);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.made = true;
    return fh;
  }

  async write(chunk: Buffer): Promise<void> {
    try {
      const fh = await this.file();
      let done = 0;
      while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done, this.size + done)).bytesWritten;
      // Counted once synced: a WRITE whose sync failed is not taken, and the client's retry at
      // the same offset writes over these bytes rather than after them.
      const size = this.size + chunk.length;
      const reached = size - (size % this.checkpointBytes);
      if (reached > this.checkpointed) await this.sync.file(fh);
      this.size = size;
      if (reached > this.checkpointed) {
        this.checkpointed = reached;
        this.onDurable?.({ offset: reached, handle: this.handle()! });
      }
    } catch (err) {
      throw localError(err, 'write to an upload file', this.root);
    }
  }

  /** Every byte is in the file already: the sync and rename of commit are all there is left. */
  async prepare(): Promise<void> {}

  /**
   * The file stays open, and named by handle(), until its rename succeeds: a COMMIT tried again
   * after a failed one renames the same bytes.
   */
  async commit(digest: string, size: number): Promise<void> {
    const path = this.finalPath(digest);
    try {
      // A file made here (an empty blob) is not announced: the COMMIT removes the ingest's record
      // beside this, and a record written after that removal would outlive the ingest.
      const fh = await this.file(false);
      const held = (await fh.stat()).size;
      if (held !== size) {
        throw startOver(`upload ${basename(this.path)} holds ${held} bytes, not the ${size} committed; write the content again from offset 0`);
      }
      await this.sync.file(fh);
      await rename(this.path, path);
      this.ended = true;
      this.fh = undefined;
      // synced and renamed: a failed close loses nothing
      await fh.close().catch(() => undefined);
      await this.sync.dir(dirname(path));
    } catch (err) {
      throw localError(err, `commit of ${digest}`, this.root);
    }
  }

  handle(): UploadHandle | undefined {
    return !this.ended && (this.made || this.fh !== undefined) ? { file: basename(this.path) } : undefined;
  }

  /**
   * Every byte is in the file already; its descriptor is let go, as thousands of ingests put
   * aside would otherwise hold thousands of them, and the next write or commit opens the file
   * again where its counted bytes end.
   */
  async suspend(): Promise<void> {
    const handle = this.fh;
    this.fh = undefined;
    if (handle) await (await handle.catch(() => undefined))?.close().catch(() => undefined);
  }

  async forget(): Promise<void> {
    await this.suspend();
  }

  async abort(): Promise<void> {
    const handle = this.fh;
    this.fh = undefined;
    this.ended = true;
    if (handle) await (await handle.catch(() => undefined))?.close().catch(() => undefined);
    await rm(this.path, { force: true }).catch((err: unknown) => {
      throw localError(err, 'discard of an upload file', this.root);
    });
  }
}
