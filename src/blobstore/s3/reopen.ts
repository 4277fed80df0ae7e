import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { readBackCancelled, startOver } from '../../errors.js';
import type { Checkpoint, ReopenedCheckpoint } from '../types.js';
import { parseCheckpoint } from './checkpoint.js';
import { copySourceOf } from './copy.js';
import { MultipartCalls } from './multipart.js';
import type { UploadContext } from './upload-context.js';

/**
 * Continues a staging upload that a crashed (or other) process left, recorded without a hash
 * state. S3 cannot read the parts of an uncompleted multipart upload, so the upload is completed
 * where it is (its staging key is no blob's: nothing becomes visible), read back for the caller
 * to hash, and copied part by part into a new multipart upload that takes the rest of the bytes.
 * The completed object is the old checkpoint's bytes: `tidy` removes it once the new checkpoint
 * is recorded; a crash before that leaves it to the collector's staging cleanup (its key names
 * the day its upload began). Each step can be repeated: a second attempt (after a crash, or by
 * another daemon at once) finds the upload completed and reads the object that completion made.
 */
export async function reopenStagingCheckpoint(
  context: UploadContext,
  checkpoint: Checkpoint,
  read: (chunk: Buffer) => void,
  signal?: AbortSignal,
): Promise<ReopenedCheckpoint> {
  const { key, uploadId, partSize, etags } = parseCheckpoint(context.keys, checkpoint, context.budget.limit);
  const { offset } = checkpoint;
  if (!key.startsWith(context.keys.staging(''))) {
    // bytes under a blob's key could be read only by making them that blob
    throw startOver(`the stored bytes of this ingest cannot be read back; write the content again from offset 0`);
  }
  if (offset === 0) return { checkpoint, tidy: async () => undefined };
  if (signal?.aborted) throw readBackCancelled();
  await new MultipartCalls(context.s3, key).completeOnce(uploadId, new Map(etags.map((etag, i) => [i + 1, etag])), offset);

  const calls = new MultipartCalls(context.s3, context.keys.staging(`${new Date().toISOString().slice(0, 10)}/${randomUUID()}`));
  const copyId = await calls.create();
  context.reopening.add(copyId);
  try {
    return await fillCopy(context, calls, copyId, key, etags, partSize, offset, read, signal);
  } finally {
    context.reopening.delete(copyId);
  }
}

/** Reads the completed checkpoint back into `read` while its parts are copied into the new upload. */
async function fillCopy(
  context: UploadContext,
  calls: MultipartCalls,
  copyId: string,
  key: string,
  etags: string[],
  partSize: number,
  offset: number,
  read: (chunk: Buffer) => void,
  cancel: AbortSignal | undefined,
): Promise<ReopenedCheckpoint> {
  // When one half fails the other stops: the read would otherwise go on through the whole
  // checkpoint after the open failed, and the copy upload is aborted only once no part copy is
  // in flight (one landing after the abort could leave a part behind).
  const stop = new AbortController();
  let failure: { err: unknown } | undefined;
  const half = <T>(work: Promise<T>): Promise<T> =>
    work.catch((err: unknown) => {
      failure ??= { err };
      stop.abort();
      throw err;
    });
  // and both stop when the open's client goes away: the read may be of gigabytes
  const cancelled = () => {
    failure ??= { err: readBackCancelled() };
    stop.abort();
  };
  if (cancel?.aborted) cancelled();
  cancel?.addEventListener('abort', cancelled, { once: true });
  let copied: PromiseSettledResult<string[]>;
  try {
    [, copied] = await Promise.allSettled([
      half(readBack(context, key, offset, read, stop.signal)),
      half(copyParts(context, calls, copyId, key, etags.length, partSize, stop.signal)),
    ]);
  } finally {
    cancel?.removeEventListener('abort', cancelled);
  }
  if (failure || copied.status === 'rejected') {
    await calls.abort(copyId);
    throw failure!.err;
  }
  return {
    checkpoint: { offset, handle: { key: calls.key, uploadId: copyId, partSize: String(partSize), etags: copied.value } },
    tidy: () => context.s3.delete(key),
  };
}

async function readBack(context: UploadContext, key: string, offset: number, read: (chunk: Buffer) => void, signal: AbortSignal): Promise<void> {
  const out = await context.s3.sendUnlessMissing(
    new GetObjectCommand({ Bucket: context.s3.name, Key: key, Range: `bytes=0-${offset - 1}` }),
    // not the read client: its sockets are the Reads' (read-slots.ts counts them)
    `GET ${key}`,
  );
  if (!out) throw startOver(`the stored bytes of this ingest are gone (${key}); write the content again from offset 0`);
  const body = out.Body as Readable;
  const cut = () => body.destroy();
  if (signal.aborted) cut();
  signal.addEventListener('abort', cut, { once: true });
  let got = 0;
  try {
    for await (const chunk of body) {
      read(chunk as Buffer);
      got += (chunk as Buffer).length;
    }
  } catch (err) {
    // Cut short here because the copy failed: the copy's error is the one that counts, and S3
    // did answer (reported as unanswered, it would turn health to NOT_SERVING).
    if (signal.aborted) throw new Error(`GET ${key}: stopped, the copy of its parts failed`);
    throw context.s3.failure(err, `GET ${key}`);
  } finally {
    signal.removeEventListener('abort', cut);
  }
  if (got !== offset) throw startOver(`${key} holds ${got} bytes, not the ${offset} of its checkpoint; write the content again from offset 0`);
}

/** Copies the object's `parts` parts of `partSize` into the new upload, as many at once as an upload sends. */
async function copyParts(
  context: UploadContext,
  calls: MultipartCalls,
  uploadId: string,
  source: string,
  parts: number,
  partSize: number,
  signal: AbortSignal,
): Promise<string[]> {
  const copySource = copySourceOf(context.s3, source);
  const etags: string[] = new Array<string>(parts);
  let next = 0;
  let failed = false;
  const worker = async () => {
    try {
      for (let n = next++; n < parts && !signal.aborted && !failed; n = next++) {
        etags[n] = await calls.uploadPartCopy(uploadId, n + 1, copySource, n * partSize, (n + 1) * partSize - 1);
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  // every worker settles before the answer, so none is still copying when the upload is aborted
  const workers = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(context.uploadParallelism, parts)) }, worker));
  for (const w of workers) if (w.status === 'rejected') throw w.reason;
  if (signal.aborted) throw new Error('the part copies stopped: reading the checkpoint back failed');
  return etags;
}
