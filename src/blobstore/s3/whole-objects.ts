import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { StoreError, resourceExhausted } from '../../errors.js';
import type { S3Bucket } from './client.js';
import { isMissing } from './errors.js';

/** A cache record is at most 8 MiB (records/store.ts); documents are far smaller. */
const MAX_SMALL_OBJECT = 16 * 1024 * 1024;
/** The largest object under the manifests prefix the collector reads through for digests. */
const MAX_STREAMED_RECORD = 1024 * 1024 * 1024;

/**
 * A whole small object (a record or a document); undefined when there is none. Read into
 * memory, so anything larger than a record may be (another tool's object under a shared or
 * empty manifests prefix, say) is refused before its body is read.
 */
export async function getSmallObject(
  s3: S3Bucket,
  key: string,
  /** Told the size before the body is read; throws to refuse it (see BlobStore.getRecord). */
  admit?: (bytes: number) => void,
): Promise<{ body: Buffer; lastModified: Date; etag?: string | undefined } | undefined> {
  try {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.name, Key: key }));
    const destroy = () => out.Body && 'destroy' in out.Body && (out.Body as { destroy(): void }).destroy();
    if ((out.ContentLength ?? 0) > MAX_SMALL_OBJECT) {
      destroy();
      throw resourceExhausted(`GET ${key}: ${out.ContentLength} bytes, more than a record or document may have (${MAX_SMALL_OBJECT})`);
    }
    try {
      admit?.(out.ContentLength ?? MAX_SMALL_OBJECT);
    } catch (err) {
      destroy();
      throw err;
    }
    const bytes = await out.Body!.transformToByteArray();
    // a view, not a copy: a record read whole is held twice over otherwise, while it is decoded
    const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { body, lastModified: out.LastModified ?? new Date(0), etag: out.ETag };
  } catch (err) {
    // the body counts as part of the GET: a response cut short fails like a refused request
    if (isMissing(err)) return undefined;
    if (err instanceof StoreError) throw err;
    throw s3.failure(err, `GET ${key}`);
  }
}

/** A record too large for `getSmallObject`, as it streams (up to 1 GiB), for the collector to read for digests. */
export async function streamRecordObject(s3: S3Bucket, key: string): Promise<AsyncIterable<Buffer> | undefined> {
  // not the read client: its sockets are the Reads' (read-slots.ts counts them)
  const out = await s3.sendUnlessMissing(new GetObjectCommand({ Bucket: s3.name, Key: key }), `GET ${key}`);
  if (!out) return undefined;
  const body = out.Body as Readable;
  if ((out.ContentLength ?? 0) > MAX_STREAMED_RECORD) {
    body.destroy();
    throw resourceExhausted(`GET ${key}: ${out.ContentLength} bytes, more than the ${MAX_STREAMED_RECORD} a record is read for digests`);
  }
  return (async function* () {
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } catch (err) {
      throw s3.brokeOff(err, `GET ${key}`);
    } finally {
      body.destroy();
    }
  })();
}

/**
 * What tells one stored version of an object from another, as a GET and a listing both report
 * it: the ETag (an MD5 of the body for the single PUTs documents are written with, and new for
 * every write under SSE-KMS) with the size beside it. Quotes differ between stores and calls.
 */
export function objectVersion(etag: string | undefined, size: number | undefined): string | undefined {
  const tag = etag?.replace(/^W\//, '').replace(/"/g, '').trim();
  // no ETag, or an empty one (a gateway's), tells nothing: such an object is always read
  if (!tag || size === undefined) return undefined;
  return `${tag}:${size}`;
}
