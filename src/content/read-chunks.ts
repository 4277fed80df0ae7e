import type { ReadSource } from '../blobstore/types.js';
import { unavailable } from '../errors.js';

/** Read chunks never exceed containerd's own 1 MiB buffer. */
const MAX_READ_CHUNK = 1 << 20;

/** Bytes of a blob from `offset`, in the pieces storage delivered them in. */
export interface ReadChunk {
  offset: number;
  pieces: readonly Buffer[];
}

/** Messages of a Read: cut as the bytes come, or all known at once (see chunkedPieces). */
export type ReadChunks = AsyncIterable<ReadChunk> | readonly ReadChunk[];

/**
 * The size of the next message, given how many bytes are left (at most 1 MiB): at most that,
 * at least 1. Asked once a message, as its first byte arrives.
 */
export type MessageSize = (want: number) => number;

/**
 * Regroups a byte stream into messages of at most 1 MiB (or what `size` allows) carrying
 * absolute offsets. The bytes stay in the pieces they arrived in: whoever puts them on the wire
 * copies them once anyway.
 */
export async function* chunked(
  source: ReadSource,
  start: number,
  end: number,
  digest: string,
  size?: MessageSize,
  /** The first message's size, when it was asked for already (see chunkedPieces). */
  firstLimit = 0,
): AsyncIterable<ReadChunk> {
  let offset = start;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** The size of the message being cut; 0 until its first byte comes. */
  let limit = firstLimit;
  // An early return closes `source` too: for-await hands it on.
  for await (const piece of source) {
    let chunk = piece;
    while (chunk.length > 0) {
      if (limit === 0) {
        const want = Math.max(1, Math.min(MAX_READ_CHUNK, end - offset));
        limit = size ? Math.max(1, Math.min(want, size(want))) : want;
      }
      const room = limit - pendingBytes;
      const take = chunk.length <= room ? chunk : chunk.subarray(0, room);
      pending.push(take);
      pendingBytes += take.length;
      chunk = chunk.subarray(take.length);
      if (pendingBytes === limit) {
        yield { offset, pieces: pending };
        offset += pendingBytes;
        pending = [];
        pendingBytes = 0;
        limit = 0;
      }
    }
  }
  if (pendingBytes > 0) {
    yield { offset, pieces: pending };
    offset += pendingBytes;
  }
  if (offset !== end) {
    throw unavailable(`read of ${digest} ended at ${offset}, expected ${end}: the stored object changed or the connection broke`);
  }
}

/**
 * As chunked, for bytes storage had at hand. The usual case, one message's worth that the size
 * allows whole (a 32 KiB Read of `ctr content get` from a window), is that one message with no
 * generator around it: thousands of such Reads make a blob, and each layer of async iteration
 * was garbage and promises at every one.
 */
export function chunkedPieces(pieces: readonly Buffer[], start: number, end: number, digest: string, size?: MessageSize): ReadChunks {
  let total = 0;
  for (const piece of pieces) total += piece.length;
  if (total === 0 || total !== end - start || total > MAX_READ_CHUNK) return chunked(pieces, start, end, digest, size);
  const limit = size ? Math.max(1, Math.min(total, size(total))) : total;
  if (limit === total) return [{ offset: start, pieces }];
  return chunked(pieces, start, end, digest, size, limit);
}
