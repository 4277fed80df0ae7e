import type { Hash } from 'node:crypto';
import { close, createWriteStream, fsync, mkdir, open, write, writev, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { newHasher, parseDigest } from '../../digest.js';
import type { ReadSource } from '../types.js';

/**
 * Bytes queued for the disk before the reader waits for it: a slow disk slows the read it
 * fills (by at most this much memory per fill) rather than piling up in memory.
 */
const WRITE_AHEAD = 1 << 20;

export type FillResult = 'verified' | 'corrupt' | 'failed';

/**
 * Opens a fill's file, making its directory again when it is gone, once: the tier makes tmp/
 * at start, and an operator who empties the cache directory while the daemon runs would
 * otherwise fail every fill from then on. A directory that cannot be made fails the fill, with
 * the error that says why (the mkdir's, not the open's ENOENT).
 */
function openMakingDir(path: string, flags: string, mode: number, done: (err: NodeJS.ErrnoException | null, fd?: number) => void): void {
  open(path, flags, mode, (err, fd) => {
    if (err?.code !== 'ENOENT') return done(err, fd);
    mkdir(dirname(path), { recursive: true }, (failed) => (failed ? done(failed) : open(path, flags, mode, done)));
  });
}

/** Node's own file calls, but for the open: a WriteStream given `fs` takes every call from it. */
const FILL_FS = { open: openMakingDir, write, writev, close, fsync };

/**
 * One blob copied into a temporary file as readers read it from S3, from its first byte on,
 * hashed on the way. Whatever happens to the file (a full disk, the fill abandoned), the reader
 * gets its bytes from S3 as if there were no tier: the file only ever follows.
 */
export class Fill {
  /** Bytes taken so far; the next reader that carries the fill on must start here. */
  position = 0;
  /** Bytes handed to the file so far, and counted against the tier's space. */
  written = 0;
  /** A reader is carrying it on now. */
  busy = false;
  /** Which claim of it the reader carrying it (or the last one) made: each claim counts one more. */
  carrier = 0;
  /** Its bytes are all taken and it is being verified and kept. */
  finishing = false;
  private readonly hash: Hash;
  private readonly algorithm: string;
  private readonly file: WriteStream;
  private broken: Error | undefined;

  constructor(
    readonly digest: string,
    readonly size: number,
    readonly tempPath: string,
    /**
     * Makes room on disk for the file to grow from `from` to `to` bytes, before those bytes
     * are written: kept blobs are evicted in step with what the fill writes.
     */
    private readonly room: (from: number, to: number) => Promise<void>,
    /**
     * When its first read began, on the tier's monotonic clock: S3's answer to that read is what
     * says the blob exists, and a fill carried on by Reads a few seconds apart can take minutes.
     */
    readonly startedAt: number,
  ) {
    this.algorithm = parseDigest(digest).algorithm;
    this.hash = newHasher(this.algorithm);
    // flush: synced before it is closed, so a file renamed into place is complete after a crash
    this.file = createWriteStream(tempPath, { flags: 'wx', flush: true, highWaterMark: WRITE_AHEAD, fs: FILL_FS });
    this.file.on('error', (err) => {
      this.broken ??= err;
    });
  }

  /** Why the file is of no use any more (a write failed, or the fill was abandoned). */
  get failure(): Error | undefined {
    return this.broken;
  }

  /**
   * Yields the source's bytes unchanged (a read of `length` bytes), copying them into the file
   * while it stays usable.
   */
  async *follow(source: ReadSource, done: (clean: boolean) => void, length: number): AsyncGenerator<Buffer> {
    this.busy = true;
    let clean = false;
    /** `done` was called: the fill is the next read's to carry on. */
    let letGo = false;
    let passed = 0;
    try {
      for await (const piece of source) {
        if (!this.broken) await this.append(piece);
        passed += piece.length;
        if (passed >= length) {
          // Let go before the read's last bytes go out: containerd's proxy sends its next Read
          // as soon as they arrive, which can be before this generator is resumed, and that
          // Read must find the fill free to carry on.
          letGo = true;
          this.busy = false;
          done(true);
          yield piece;
          return;
        }
        yield piece;
      }
      clean = true;
    } finally {
      if (!letGo) {
        this.busy = false;
        done(clean);
      }
    }
  }

  private async append(piece: Buffer): Promise<void> {
    this.position += piece.length;
    if (this.position > this.size) {
      this.broken = new Error(`more than the blob's ${this.size} bytes`);
      return;
    }
    this.hash.update(piece);
    await this.room(this.written, this.position);
    this.written = this.position;
    // Making room takes time (evicted files are removed), and meanwhile a write may have failed
    // or the fill been abandoned: a closed file takes no write, and would never drain or close
    // again for the read to go on.
    if (this.broken || this.file.destroyed) {
      this.broken ??= new Error('the file closed');
      return;
    }
    if (this.file.write(piece)) return;
    await new Promise<void>((resolve) => {
      const settle = () => {
        this.file.off('drain', settle);
        this.file.off('close', settle);
        this.file.off('error', settle);
        resolve();
      };
      // a failed stream closes instead of draining
      this.file.on('drain', settle);
      this.file.on('close', settle);
      this.file.on('error', settle);
      if (this.file.destroyed) settle();
    });
  }

  /** Ends the file and checks it: `verified` only with every byte there, synced, and the digest right. */
  async complete(): Promise<FillResult> {
    if (!this.broken && this.position === this.size) {
      await new Promise<void>((resolve) => {
        this.file.once('close', resolve);
        this.file.end();
      });
    }
    if (this.broken || this.position !== this.size) {
      await this.discard();
      return 'failed';
    }
    if (`${this.algorithm}:${this.hash.digest('hex')}` !== this.digest) {
      await this.discard();
      return 'corrupt';
    }
    return 'verified';
  }

  /** Gives the fill up: the file goes, and readers carrying it on only pass bytes through. */
  abandon(): void {
    this.broken ??= new Error('abandoned');
    void this.discard();
  }

  /** Removes the temporary file, once the stream has let go of it (it may still be opening). */
  async discard(): Promise<void> {
    this.broken ??= new Error('discarded');
    if (!this.file.closed) {
      await new Promise<void>((resolve) => {
        this.file.once('close', resolve);
        this.file.destroy();
      });
    }
    await unlink(this.tempPath).catch(() => undefined);
  }
}
