import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3Bucket } from '../../src/blobstore/s3/client.js';
import { copyObject } from '../../src/blobstore/s3/copy.js';
import { MultipartCalls } from '../../src/blobstore/s3/multipart.js';

/*
 * What a store may answer only once done, in silence, goes through the bucket's slow client (a
 * 5-minute idle timeout an attempt); the rest through the default one (a minute), so that a
 * silent S3 fails ordinary calls soon (test/s3-errors.test.ts shows both timeouts at work).
 */

const GiB = 1024 ** 3;

/** What each command answers here: enough for the code under test to go on. */
const ANSWERS: Record<string, object> = {
  CreateMultipartUploadCommand: { UploadId: 'u' },
  UploadPartCopyCommand: { CopyPartResult: { ETag: '"p"' } },
  UploadPartCommand: { ETag: '"p"' },
};

/** A client that sends nothing: it logs `<name> <command>` and answers from ANSWERS. */
function recording(name: string, log: string[], failing?: string): S3Client {
  const client = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
  client.middlewareStack.add(
    (_next, context) => async () => {
      const command = context.commandName ?? '';
      log.push(`${name} ${command.replace(/Command$/, '')}`);
      if (command === failing) throw new Error(`${command} failed, for the test`);
      return { output: { $metadata: {}, ...ANSWERS[command] }, response: {} } as never;
    },
    { step: 'initialize', priority: 'high', name: 'recordForTest' },
  );
  return client;
}

function bucketLogging(failing?: string): { s3: S3Bucket; log: string[] } {
  const log: string[] = [];
  const client = recording('default', log, failing);
  const slow = recording('slow', log, failing);
  const s3 = new S3Bucket(client, { bucket: 'b', region: 'us-east-1' }, client, () => client, slow);
  return { s3, log };
}

describe('requests a store may answer only once done', () => {
  it('a server-side copy under 5 GiB goes through the slow client', async () => {
    const { s3, log } = bucketLogging();
    await copyObject(s3, 'a', 'b', 10);
    expect(log).toEqual(['slow CopyObject']);
  });

  it("a copy part by part sends its part copies and its completion through the slow client, its start through the default one", async () => {
    const { s3, log } = bucketLogging();
    await copyObject(s3, 'a', 'b', 6 * GiB);
    expect(log).toEqual(['default CreateMultipartUpload', ...Array(6).fill('slow UploadPartCopy'), 'slow CompleteMultipartUpload']);
  });

  it("a copy part by part that fails aborts its upload through the slow client", async () => {
    const { s3, log } = bucketLogging('CompleteMultipartUploadCommand');
    await expect(copyObject(s3, 'a', 'b', 6 * GiB)).rejects.toThrow();
    expect(log.slice(-2)).toEqual(['slow CompleteMultipartUpload', 'slow AbortMultipartUpload']);
  });

  it("an upload's part copy, completion and abort go through the slow client; its start and parts through the default one", async () => {
    const { s3, log } = bucketLogging();
    const calls = new MultipartCalls(s3, 'k');
    const id = await calls.create();
    await calls.uploadPart(id, 1, Buffer.alloc(4));
    await calls.uploadPartCopy(id, 2, 'b/src', 0, 3);
    await calls.complete(id, new Map([[1, '"p"'], [2, '"p"']]));
    await calls.abort(id);
    expect(log).toEqual(['default CreateMultipartUpload', 'default UploadPart', 'slow UploadPartCopy', 'slow CompleteMultipartUpload', 'slow AbortMultipartUpload']);
  });
});
