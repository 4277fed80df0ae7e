import { countLookup } from '../../metrics/registry.js';
import { PieceFailed, readPieces, type PieceBudget } from '../disk-pieces.js';
import type { ReadSource } from '../types.js';
import type { OpenFiles } from './open-files.js';
import type { ReadWindows } from './read-windows.js';

/**
 * `length` bytes of the file from `offset`. A Read smaller than a window (of a blob of `size`
 * bytes) goes through the windows, so the small Reads of a blob read in order mostly touch no
 * file, and comes back as the one piece it is. A file that cannot be read (removed by hand, cut
 * short) hands the rest of the read to `rest`, which reads S3: the tier never fails a read that
 * S3 can answer.
 *
 * Counts the read in the tier's lookups once it is known where its bytes came from: a hit when
 * the file gave them all, a miss when any had to come from S3 (as the metric says, hits are Reads
 * served from disk, and a miss costs a GET). A large read whose client stops early counts as a
 * hit, what it took having come from disk; one whose client goes before it starts, as nothing.
 */
export function readFromDisk(
  files: OpenFiles,
  windows: ReadWindows,
  pieces: PieceBudget,
  path: string,
  offset: number,
  length: number,
  size: number,
  rest: (position: number, err: unknown) => Promise<ReadSource>,
): ReadSource | Promise<ReadSource> {
  if (length >= windows.size) return streamFromDisk({ files, windows, pieces, path, offset, length, size, rest });
  const held = windows.readHeld(path, offset, length);
  if (held) countLookup('tier', true);
  return held ? [own(held)] : readSmall({ files, windows, pieces, path, offset, length, size, rest });
}

/**
 * Read messages are cut down to 32 KiB while many Reads share the daemon's budget for them, and
 * the messages of a Read whose client takes nothing wait: each would keep alive the whole window
 * its bytes are a view of, a MiB outside every budget. Bytes that may go out as more than one
 * message are copied out of their window; a Read of 32 KiB or less (what `ctr content get`
 * sends) goes as one message, at once.
 */
const ONE_MESSAGE = 32 * 1024;
const own = (bytes: Buffer): Buffer => (bytes.length > ONE_MESSAGE ? Buffer.from(bytes) : bytes);

/** One read of a kept file, as readFromDisk was asked for it. */
interface KeptRead {
  files: OpenFiles;
  windows: ReadWindows;
  pieces: PieceBudget;
  path: string;
  offset: number;
  length: number;
  size: number;
  rest: (position: number, err: unknown) => Promise<ReadSource>;
}

async function readSmall({ files, windows, pieces, path, offset, length, size, rest }: KeptRead): Promise<ReadSource> {
  let bytes: Buffer;
  try {
    bytes = await windows.read(path, offset, length, size, (at, n) => files.read(path, at, n), pieces);
  } catch (err) {
    countLookup('tier', false);
    return rest(offset, err);
  }
  countLookup('tier', true);
  return [own(bytes)];
}

/** A piece at a time, the next read from the file while the last goes out (see readPieces). */
async function* streamFromDisk({ files, path, offset, length, pieces, rest }: KeptRead): AsyncGenerator<Buffer> {
  let fromS3 = false;
  try {
    yield* readPieces((at, n) => files.read(path, at, n), offset, length, pieces);
  } catch (err) {
    // only a read of the file fails here: the reader's own stop ends the generator without one
    if (!(err instanceof PieceFailed)) throw err;
    fromS3 = true;
    countLookup('tier', false);
    yield* await rest(err.position, err.cause);
  } finally {
    if (!fromS3) countLookup('tier', true);
  }
}
