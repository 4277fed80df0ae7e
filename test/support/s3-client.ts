import { S3Client } from '@aws-sdk/client-s3';
import type { S3Target } from './global-setup.js';

/** A plain SDK client for the test store, independent of the daemon, as any non-AWS store wants it. */
export function clientFor(target: S3Target): S3Client {
  return new S3Client({
    region: target.region,
    endpoint: target.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKey, secretAccessKey: target.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
