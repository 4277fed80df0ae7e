import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { createS3Client, S3Bucket } from '../src/blobstore/s3/client.js';
import { MultipartCalls } from '../src/blobstore/s3/multipart.js';
import { fullCollection } from '../src/memory-trim.js';
import { newBucket, s3, useS3Credentials } from './support/harness.js';

/**
 * The S3 client keeps, for each kind of command, the handler it resolved for the first one
 * (cacheMiddleware), and the handler holds that command's context, input and all. What the
 * daemon sent must not stay with it: an upload's first part is 8 MiB.
 */
describe('bodies sent to S3', () => {
  const gc = fullCollection()!;

  /** Whether `ref`'s buffer outlives a full collection or two (V8 frees weak targets at one). */
  async function survives(ref: WeakRef<Buffer>): Promise<boolean> {
    for (let i = 0; i < 3 && ref.deref(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      gc();
    }
    return ref.deref() !== undefined;
  }

  async function bucketClient(): Promise<S3Bucket> {
    useS3Credentials();
    const config = resolveConfig({ bucket: await newBucket(), endpointUrl: s3().endpoint, region: s3().region }, {});
    return new S3Bucket(createS3Client(config.s3!), config.s3!);
  }

  it('are let go once a part upload is stored, the first the client sent too', async () => {
    const bucket = await bucketClient();
    const calls = new MultipartCalls(bucket, 'sent-bodies/part');
    const uploadId = await calls.create();
    let body: Buffer | undefined = Buffer.alloc(5 * 1024 * 1024, 7);
    const ref = new WeakRef(body);
    await calls.uploadPart(uploadId, 1, body);
    body = undefined;
    try {
      expect(await survives(ref)).toBe(false);
    } finally {
      await calls.abort(uploadId).catch(() => undefined);
      bucket.destroy();
    }
  });

  it('are let go once a whole object is stored, the first the client sent too', async () => {
    const bucket = await bucketClient();
    let body: Buffer | undefined = Buffer.alloc(1024 * 1024, 7);
    const ref = new WeakRef(body);
    await bucket.put('sent-bodies/object', body);
    body = undefined;
    try {
      expect(await survives(ref)).toBe(false);
    } finally {
      bucket.destroy();
    }
  });
});
