import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { StartOver, startOver, type StoreError } from '../../errors.js';
import { sendLettingGo, type S3Bucket } from './client.js';

/**
 * S3's multipart calls for one upload's key, failures already domain errors: the upload
 * (upload.ts) keeps the state of its parts and says when to call which.
 */
export class MultipartCalls {
  constructor(
    private readonly s3: S3Bucket,
    readonly key: string,
  ) {}

  async create(): Promise<string> {
    try {
      const out = await this.s3.client.send(new CreateMultipartUploadCommand({ Bucket: this.s3.name, Key: this.key }));
      return out.UploadId!;
    } catch (err) {
      throw this.s3.failure(err, `start multipart upload of ${this.key}`);
    }
  }

  /** Stores one part; answers its ETag. */
  async uploadPart(uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    try {
      const command = new UploadPartCommand({ Bucket: this.s3.name, Key: this.key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length });
      const out = await sendLettingGo(command, 'Body', (c) => this.s3.client.send(c));
      return out.ETag ?? '';
    } catch (err) {
      throw this.failure(err, `upload part ${partNumber}`);
    }
  }

  /** Stores one part copied from bytes `start`..`end` (inclusive) of the object `copySource`; answers its ETag. */
  async uploadPartCopy(uploadId: string, partNumber: number, copySource: string, start: number, end: number): Promise<string> {
    try {
      const out = await this.s3.slowClient.send(
        new UploadPartCopyCommand({
          Bucket: this.s3.name,
          Key: this.key,
          UploadId: uploadId,
          PartNumber: partNumber,
          CopySource: copySource,
          CopySourceRange: `bytes=${start}-${end}`,
        }),
      );
      return out.CopyPartResult?.ETag ?? '';
    } catch (err) {
      throw this.failure(err, `copy into part ${partNumber}`);
    }
  }

  /** Makes the stored parts, in part-number order, the object. */
  async complete(uploadId: string, etags: ReadonlyMap<number, string>): Promise<void> {
    const parts = [...etags].sort(([a], [b]) => a - b).map(([PartNumber, ETag]) => ({ PartNumber, ETag }));
    try {
      const command = new CompleteMultipartUploadCommand({ Bucket: this.s3.name, Key: this.key, UploadId: uploadId, MultipartUpload: { Parts: parts } });
      await sendLettingGo(command, 'MultipartUpload', (c) => this.s3.slowClient.send(c));
    } catch (err) {
      throw this.failure(err, 'complete multipart upload');
    }
  }

  /**
   * Completes the upload, unless that was done already: an attempt S3 carried out whose answer
   * was lost (the SDK's retry, a COMMIT tried again, a crash) finds the upload gone, and the
   * object of `size` bytes at the key says it was completed.
   */
  async completeOnce(uploadId: string, etags: ReadonlyMap<number, string>, size: number): Promise<void> {
    try {
      await this.complete(uploadId, etags);
    } catch (err) {
      if (!(err instanceof StartOver)) throw err;
      const head = await this.s3.sendUnlessMissing(new HeadObjectCommand({ Bucket: this.s3.name, Key: this.key }), `HEAD ${this.key}`);
      if (head?.ContentLength !== size) throw err;
    }
  }

  /** Best effort: an upload left behind is what the sweep and a lifecycle rule are for. */
  async abort(uploadId: string): Promise<void> {
    await this.s3.slowClient.send(new AbortMultipartUploadCommand({ Bucket: this.s3.name, Key: this.key, UploadId: uploadId })).catch(() => undefined);
  }

  /** An upload completed or aborted elsewhere cannot take more parts: the client must start over. */
  private failure(err: unknown, operation: string): StoreError {
    if (err instanceof S3ServiceException && err.name === 'NoSuchUpload') {
      return startOver(
        `multipart upload of ${this.key} no longer exists (completed or aborted elsewhere); write the content again from offset 0`,
      );
    }
    return this.s3.failure(err, `${operation} of ${this.key}`);
  }
}
