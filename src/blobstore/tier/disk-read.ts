import { open } from 'node:fs/promises';

/** As S3 reads are sent on: a Read message is at most 1 MiB, so each piece is one message. */
const PIECE = 1 << 20;

/**
 * Yields `length` bytes of the file from `offset`, a piece at a time, opening the file for each
 * piece: a client that takes its time holds no descriptor, so open files are bounded by the
 * pieces being read at once (libuv's few threads), not by the clients. A file that went away
 * meanwhile (evicted) or came up short hands the rest of the read to `rest`, which reads S3.
 */
export async function* readFromDisk(
  path: string,
  offset: number,
  length: number,
  rest: (position: number, err: unknown) => Promise<AsyncIterable<Buffer>>,
): AsyncGenerator<Buffer> {
  const end = offset + length;
  let position = offset;
  while (position < end) {
    let piece: Buffer;
    try {
      piece = await readPiece(path, position, Math.min(PIECE, end - position));
    } catch (err) {
      yield* await rest(position, err);
      return;
    }
    position += piece.length;
    yield piece;
  }
}

async function readPiece(path: string, position: number, length: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const piece = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await file.read(piece, got, length - got, position + got);
      if (bytesRead === 0) throw new Error(`${path}: ends before ${position + length}`);
      got += bytesRead;
    }
    return piece;
  } finally {
    await file.close();
  }
}
