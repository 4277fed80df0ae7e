import { close, open, read } from 'node:fs';

interface Handle {
  readonly fd: Promise<number>;
  users: number;
  lastUsed: number;
  /** Out of the table: closed once its last reader is done. */
  retired: boolean;
}

/**
 * Descriptors of kept blobs, shared by the reads of a blob and left open a while between them.
 * `ctr content get` reads a blob as one Read call per 32 KiB, and opening and closing the file
 * for each cost more than the read itself. At most `max` stay open between reads (least recently
 * used closed first), each closed after `idleMs` unused; one pushed out while a read uses it is
 * closed once that read is done, so reads of many files at once hold more. A descriptor is never
 * held while a client takes its time, only while a piece is read.
 */
export class OpenFiles {
  private readonly handles = new Map<string, Handle>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
  ) {
    this.sweeper = setInterval(() => this.closeIdle(), idleMs);
    this.sweeper.unref();
  }

  get count(): number {
    return this.handles.size;
  }

  /** Exactly `length` bytes of the file from `position`; fails when the file has fewer. */
  async read(path: string, position: number, length: number): Promise<Buffer> {
    const handle = this.acquire(path);
    try {
      const fd = await handle.fd;
      const piece = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = await readAt(fd, piece, got, length - got, position + got);
        if (n === 0) throw new FileEndsShort(`${path}: ends before ${position + length}`);
        got += n;
      }
      return piece;
    } catch (err) {
      // a file that failed is not kept open for the next reader
      if (this.handles.get(path) === handle) this.forget(path);
      throw err;
    } finally {
      handle.users--;
      handle.lastUsed = Date.now();
      if (handle.retired && handle.users === 0) shut(handle);
    }
  }

  /** The file is going (evicted): its descriptor is closed once no read uses it. */
  forget(path: string): void {
    const handle = this.handles.get(path);
    if (!handle) return;
    this.handles.delete(path);
    this.retire(handle);
  }

  closeAll(): void {
    clearInterval(this.sweeper);
    for (const path of [...this.handles.keys()]) this.forget(path);
  }

  private acquire(path: string): Handle {
    let handle = this.handles.get(path);
    if (handle) {
      this.handles.delete(path);
    } else {
      handle = { fd: openForReading(path), users: 0, lastUsed: Date.now(), retired: false };
      // a failed open is seen by the read that awaits it
      handle.fd.catch(() => undefined);
    }
    this.handles.set(path, handle);
    handle.users++;
    for (const [oldest, h] of this.handles) {
      if (this.handles.size <= this.max) break;
      this.handles.delete(oldest);
      this.retire(h);
    }
    return handle;
  }

  private retire(handle: Handle): void {
    handle.retired = true;
    if (handle.users === 0) shut(handle);
  }

  private closeIdle(): void {
    const before = Date.now() - this.idleMs;
    for (const [path, handle] of [...this.handles]) {
      if (handle.users === 0 && handle.lastUsed < before) this.forget(path);
    }
  }
}

/** The file has fewer bytes than its blob: cut short, by hand or by a crash of the disk. */
class FileEndsShort extends Error {}

/** Failures that pass: the process or system short of descriptors or memory, a call interrupted. */
const PASSING_CODES = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM', 'EINTR', 'EBUSY']);

/**
 * Whether a failed read says the kept file is of no more use. Those that pass keep it: evicting
 * a verified blob for them would cost a refill from S3 for nothing. Any other (gone, damaged,
 * cut short, no longer readable by this process, a stale NFS handle) evicts it, or every Read of
 * the blob would fail on it first, and its space stay taken.
 */
export function fileLost(err: unknown): boolean {
  return err instanceof FileEndsShort || !PASSING_CODES.has((err as NodeJS.ErrnoException | null | undefined)?.code ?? '');
}

function shut(handle: Handle): void {
  handle.fd.then(
    (fd) => close(fd, () => undefined),
    () => undefined,
  );
}

function openForReading(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readAt(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
