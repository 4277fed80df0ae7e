// The raw side: @aws-sdk/client-s3 (and lib-storage for multipart) on the same server, the
// baseline every case compares the daemon with.
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PARALLEL, PART } from './config.mjs';
import { pool } from './data.mjs';
import { countRawRequests } from './requests.mjs';

/** A client for `s3` and `bucket` whose requests are counted (`raw.requests`). */
export function rawSide(s3, bucket) {
  const client = new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    // Swift answers the SDK's default aws-chunked bodies with 501
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const requests = countRawRequests(client);
  const send = (command) => client.send(command);
  return {
    client,
    bucket,
    requests,
    send,
    createBucket: () => send(new CreateBucketCommand({ Bucket: bucket })),

    /** A multipart upload by lib-storage, with the daemon's part size and parallelism. */
    async upload(key, b) {
      await new Upload({ client, params: { Bucket: bucket, Key: key, Body: Readable.from(b.chunks()) }, partSize: PART, queueSize: PARALLEL }).done();
    },

    /** Uploads `count` copies of `part` as one multipart upload and times only its completion. */
    async completeMs(key, part, count) {
      const { UploadId } = await send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const parts = [];
      await pool(count, PARALLEL, async (k) => {
        const out = await send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: k + 1, Body: part }));
        parts[k] = { PartNumber: k + 1, ETag: out.ETag };
      });
      const t = performance.now();
      await send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
      return performance.now() - t;
    },

    /** One GetObject of the whole object, read to its end; answers the bytes. */
    async get(key) {
      const out = await send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      let bytes = 0;
      for await (const c of out.Body) bytes += c.length;
      return bytes;
    },

    /** Deletes every object and the bucket (for a store the bench did not start). */
    async emptyAndDelete() {
      let token;
      do {
        const out = await send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        await pool(out.Contents?.length ?? 0, 16, (k) => send(new DeleteObjectCommand({ Bucket: bucket, Key: out.Contents[k].Key })));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      await send(new DeleteBucketCommand({ Bucket: bucket }));
    },
  };
}
