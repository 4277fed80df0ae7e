import type { FileHandle } from 'node:fs/promises';

/** A Read message is at most 1 MiB, so a whole piece is one message. */
export const WHOLE_PIECE = 1 << 20;

/**
 * What a read takes at a time once the budget is spent: the Read budget's smallest message
 * (grpc/read-budget.ts), so a stream cut to small messages holds no more than that of a piece.
 */
export const SMALL_PIECE = 32 * 1024;

/**
 * Bytes of a store's files read for Reads and not yet taken on by them: the piece a Read's stream
 * is cutting into messages and the one read ahead of it. A client that takes nothing keeps its
 * Read's pieces in memory until the stream's idle timeout; without this bound, --max-streams such
 * Reads of kept files held 2 MiB each. Past the bound a read goes on in small pieces rather than
 * waiting, so stalled clients slow the others' disk reads without stopping them.
 */
export class PieceBudget {
  used = 0;
  constructor(readonly total: number) {}

  /** Takes the size of a read's next piece, with `left` bytes still to read: whole while there is room. */
  take(left: number): number {
    const whole = Math.min(WHOLE_PIECE, left);
    const size = this.used + whole <= this.total ? whole : Math.min(whole, SMALL_PIECE);
    this.used += size;
    return size;
  }

  /** Takes `bytes` only if they fit: for reads that can do without them (a window read ahead). */
  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.total) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

/** Reads exactly `length` bytes of a file from `position` (fails when it has fewer). */
export type ReadAt = (position: number, length: number) => Promise<Buffer>;

/**
 * `length` bytes of a file from `offset`, a piece at a time, the next read while the last goes out.
 * Each piece counts against `budget` from its read until the reader asks for the one after it (or
 * stops): a stream waiting for its client holds the piece it is cutting into messages, and so it
 * stays counted. (A message cut from several small pieces holds those already asked past, up to
 * one message, only while the next piece is read from disk.) A failed read throws PieceFailed,
 * which says where the bytes stopped.
 */
export async function* readPieces(readAt: ReadAt, offset: number, length: number, budget: PieceBudget): AsyncGenerator<Buffer> {
  const end = offset + length;
  let next = offset;
  /** Bytes counted for pieces read or being read, and not yet taken on. */
  let counted = 0;
  const start = () => {
    const at = next;
    const size = budget.take(end - at);
    counted += size;
    next += size;
    const reading = readAt(at, size).catch((err: unknown) => {
      throw new PieceFailed(at, err);
    });
    reading.catch(() => undefined);
    return { reading, size };
  };
  try {
    let pending = next < end ? start() : undefined;
    while (pending) {
      const piece = await pending.reading;
      const { size } = pending;
      pending = next < end ? start() : undefined;
      yield piece;
      budget.give(size);
      counted -= size;
    }
  } finally {
    budget.give(counted);
  }
}

/**
 * `length` bytes of a file from `offset` in pieces (see readPieces). The file is opened by the
 * first read and closed once the reader is done, so a reader that never starts holds nothing; a
 * read that fails throws its own error, and `short` names a file that ends early.
 */
export async function* piecesOfFile(
  open: () => Promise<FileHandle>,
  offset: number,
  length: number,
  budget: PieceBudget,
  short: (position: number) => Error,
): AsyncGenerator<Buffer> {
  const file = await open();
  const readAt: ReadAt = async (position, size) => {
    const piece = Buffer.allocUnsafe(size);
    for (let got = 0; got < size; ) {
      const { bytesRead } = await file.read(piece, got, size - got, position + got);
      if (bytesRead === 0) throw short(position + got);
      got += bytesRead;
    }
    return piece;
  };
  try {
    yield* readPieces(readAt, offset, length, budget);
  } catch (err) {
    throw err instanceof PieceFailed ? err.cause : err;
  } finally {
    await file.close();
  }
}

/** A piece of a file could not be read: the bytes before `position` were read. */
export class PieceFailed extends Error {
  constructor(
    readonly position: number,
    override readonly cause: unknown,
  ) {
    super(`read of a file failed at ${position}: ${String(cause)}`);
  }
}
