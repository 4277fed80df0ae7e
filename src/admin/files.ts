import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AdminFailure } from './failure.js';

/** Local files of the admin commands: outputs that appear whole or not at all, inputs in chunks. */

export interface Output {
  stream: NodeJS.WritableStream;
  /** Puts the file in place once every byte is written. */
  commit(): Promise<void>;
  /** Removes what was written. */
  discard(): Promise<void>;
}

/**
 * A file written beside `path` under a temporary name and renamed over it at the end, so a
 * failed or interrupted transfer never leaves a half-written file where the whole one belongs.
 */
export async function openOutput(path: string): Promise<Output> {
  const partial = join(dirname(path), `.${basename(path)}.partial-${randomBytes(4).toString('hex')}`);
  let handle;
  try {
    handle = await open(partial, 'wx', 0o644);
  } catch (err) {
    throw new AdminFailure(`cannot write ${path}: ${(err as Error).message}`);
  }
  const stream = handle.createWriteStream();
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return {
    stream,
    async commit() {
      await closed;
      try {
        await rename(partial, path);
      } catch (err) {
        await rm(partial, { force: true });
        throw new AdminFailure(`cannot write ${path}: ${(err as Error).message}`);
      }
    },
    async discard() {
      if (!stream.destroyed) stream.destroy();
      await closed;
      await rm(partial, { force: true });
    },
  };
}

/**
 * Regroups a byte stream into chunks of `size` (the last one shorter): stdin gives a pipe's
 * 64 KiB at a time, and a WRITE message per 64 KiB would cost a round of answers each.
 */
export async function* rechunk(source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const piece of source) {
    let buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
    while (buf.length > 0) {
      const take = Math.min(size - held, buf.length);
      parts.push(take === buf.length ? buf : buf.subarray(0, take));
      held += take;
      buf = buf.subarray(take);
      if (held === size) {
        yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
        parts = [];
        held = 0;
      }
    }
  }
  if (held > 0) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
}

/** Reads a whole input of at most `limit` bytes (a cache record: the daemon takes 8 MiB). */
export async function readBounded(source: AsyncIterable<Buffer | string>, limit: number, name: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const piece of source) {
      const buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
      total += buf.length;
      if (total > limit) throw new AdminFailure(`${name} is larger than ${limit} bytes`);
      parts.push(buf);
    }
  } catch (err) {
    if (err instanceof AdminFailure) throw err;
    throw new AdminFailure(`cannot read ${name}: ${(err as Error).message}`);
  }
  return Buffer.concat(parts, total);
}
