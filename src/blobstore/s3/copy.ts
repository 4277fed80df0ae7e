import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { sendLettingGo, type S3Bucket } from './client.js';

/** S3 refuses single copies of 5 GiB and more; larger objects are copied part by part. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;
const COPY_PART_SIZE = 1024 ** 3;

/** The `CopySource` naming `key` in the bucket. */
export function copySourceOf(s3: S3Bucket, key: string): string {
  return `${s3.name}/${encodeURIComponent(key).replace(/%2F/g, '/')}`;
}

/** Server-side copy; objects of 5 GiB and more go part by part, as S3 requires. */
export async function copyObject(
  s3: S3Bucket,
  source: string,
  destination: string,
  size: number,
  metadata?: Record<string, string>,
): Promise<void> {
  const bucket = s3.name;
  const client = s3.client;
  // the copies, the completion and an abort may be answered only once done (see S3Bucket.slowClient)
  const slow = s3.slowClient;
  const copySource = copySourceOf(s3, source);
  const replace = metadata ? { MetadataDirective: 'REPLACE' as const, Metadata: metadata } : {};
  try {
    if (size < MAX_SINGLE_COPY) {
      await slow.send(new CopyObjectCommand({ Bucket: bucket, Key: destination, CopySource: copySource, ...replace }));
      return;
    }
    const created = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: destination, ...(metadata ? { Metadata: metadata } : {}) }),
    );
    const uploadId = created.UploadId!;
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, n = 1; start < size; start += COPY_PART_SIZE, n++) {
        const end = Math.min(start + COPY_PART_SIZE, size) - 1;
        const out = await slow.send(
          new UploadPartCopyCommand({
            Bucket: bucket,
            Key: destination,
            UploadId: uploadId,
            PartNumber: n,
            CopySource: copySource,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ PartNumber: n, ETag: out.CopyPartResult?.ETag });
      }
      const complete = new CompleteMultipartUploadCommand({ Bucket: bucket, Key: destination, UploadId: uploadId, MultipartUpload: { Parts: parts } });
      await sendLettingGo(complete, 'MultipartUpload', (c) => slow.send(c));
    } catch (err) {
      await slow.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: destination, UploadId: uploadId })).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    // one failure for the whole copy, whichever request of it failed
    throw s3.failure(err, `COPY ${source} to ${destination}`);
  }
}
