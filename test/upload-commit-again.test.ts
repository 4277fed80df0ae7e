import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/blobstore/types.js';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { openBlobStore } from '../src/server.js';
import { newBucket, randomBlob, rawS3, s3, useS3Credentials } from './support/harness.js';

/**
 * A COMMIT whose claim failed after its bytes landed (the hold's write, say) can be tried again;
 * the upload holds none of its bytes any more, and must send none.
 */
describe('an upload committed again', () => {
  let store: BlobStore;
  let bucket: string;
  beforeAll(async () => {
    useS3Credentials();
    bucket = await newBucket();
    store = await openBlobStore(resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region }, {}), pino({ level: 'silent' }));
  });
  afterAll(async () => store?.close());

  const committed = async (data: Buffer) => {
    const upload = store.createUpload({ sizeHint: data.length });
    await upload.write(data);
    await upload.commit(digestOf(data), data.length);
    return upload;
  };

  it('leaves the blob it stored as it is', async () => {
    const data = randomBlob(1000);
    const upload = await committed(data);
    await upload.commit(digestOf(data), data.length);
    const got = await rawS3().send(new GetObjectCommand({ Bucket: bucket, Key: `blobs/${digestOf(data)}` }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
  });

  it('tells the writer to start over once the blob it stored is gone, storing nothing under its key', async () => {
    const data = randomBlob(1000);
    const upload = await committed(data);
    await rawS3().send(new DeleteObjectCommand({ Bucket: bucket, Key: `blobs/${digestOf(data)}` }));
    await expect(upload.commit(digestOf(data), data.length)).rejects.toMatchObject({ kind: 'failed-precondition' });
    expect(await store.statBlob(digestOf(data), { fresh: true })).toBeUndefined();
  });

  it('takes no more bytes once a COMMIT sent its short last part, telling the writer to start over', async () => {
    const MiB = 1024 * 1024;
    // a part (8 MiB) on its way, and 2 MiB left for the last
    const data = randomBlob(10 * MiB);
    const upload = store.createUpload({});
    await upload.write(data);
    // the COMMIT's first step sends the last, short part; its claim then failed (S3 away, say)
    await upload.prepare(digestOf(data));
    await expect(upload.write(randomBlob(MiB))).rejects.toMatchObject({ kind: 'failed-precondition', message: expect.stringContaining('takes no more bytes') });
    await upload.abort();
  });
});
