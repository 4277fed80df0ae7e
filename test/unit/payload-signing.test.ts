import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3ServiceException, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { createS3Client, uploadsUnsigned } from '../../src/blobstore/s3/client.js';
import { probeBucket } from '../../src/blobstore/s3/probe.js';

/** A client whose requests stop once signed, answering the payload hash each was signed with. */
function signingClient(
  endpoint: string | undefined,
  signPayloads = false,
): { client: S3Client; signedWith: (send: () => Promise<unknown>) => Promise<string | undefined> } {
  const client = createS3Client({
    bucket: 'b',
    region: 'us-east-1',
    endpoint,
    signPayloads,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    prefix: '',
    blobsPrefix: 'blobs/',
    manifestsPrefix: 'manifests/',
    metadataPrefix: 's3cs/',
    partSize: 8 << 20,
    uploadParallelism: 1,
    maxAttempts: 1,
  });
  let seen: string | undefined;
  client.middlewareStack.add(
    () => async (args) => {
      const headers = (args.request as { headers: Record<string, string> }).headers;
      seen = headers['x-amz-content-sha256'];
      // signed with it: the request goes nowhere
      expect(/SignedHeaders=([^,]*)/.exec(headers.authorization ?? '')?.[1]?.split(';')).toContain('x-amz-content-sha256');
      throw new Error('stopped before sending');
    },
    { step: 'finalizeRequest', name: 'stopAfterSigning', priority: 'low' },
  );
  return {
    client,
    signedWith: async (send) => {
      seen = undefined;
      await expect(send()).rejects.toThrow('stopped before sending');
      return seen;
    },
  };
}

const body = Buffer.from('bytes of a blob');
const bodyHash = createHash('sha256').update(body).digest('hex');

describe('how writes to S3 are signed', () => {
  it('signs PutObject and UploadPart over HTTPS without hashing the body, as the AWS CLI does', async () => {
    const { client, signedWith } = signingClient('https://s3.example.invalid');
    expect(await signedWith(() => client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: body })))).toBe('UNSIGNED-PAYLOAD');
    expect(await signedWith(() => client.send(new UploadPartCommand({ Bucket: 'b', Key: 'k', UploadId: 'u', PartNumber: 1, Body: body })))).toBe(
      'UNSIGNED-PAYLOAD',
    );
    client.destroy();
  });

  it('does so on AWS\'s own endpoints, found from the region alone', async () => {
    const { client, signedWith } = signingClient(undefined);
    expect(await signedWith(() => client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: body })))).toBe('UNSIGNED-PAYLOAD');
    client.destroy();
  });

  it('signs the hash of the body over HTTPS too with --s3-sign-payloads', async () => {
    const { client, signedWith } = signingClient('https://s3.example.invalid', true);
    expect(await signedWith(() => client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: body })))).toBe(bodyHash);
    expect(await signedWith(() => client.send(new UploadPartCommand({ Bucket: 'b', Key: 'k', UploadId: 'u', PartNumber: 1, Body: body })))).toBe(bodyHash);
    client.destroy();
  });

  it('signs PutObject and UploadPart without hashing the body over plain HTTP to a loopback address, where the bytes cross no network', async () => {
    for (const endpoint of ['http://127.0.0.1:9', 'http://localhost:9', 'http://[::1]:9']) {
      const { client, signedWith } = signingClient(endpoint);
      expect(await signedWith(() => client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: body })))).toBe('UNSIGNED-PAYLOAD');
      expect(await signedWith(() => client.send(new UploadPartCommand({ Bucket: 'b', Key: 'k', UploadId: 'u', PartNumber: 1, Body: body })))).toBe(
        'UNSIGNED-PAYLOAD',
      );
      client.destroy();
    }
  });

  it('signs the hash of the body to a loopback address too with --s3-sign-payloads', async () => {
    const { client, signedWith } = signingClient('http://127.0.0.1:9', true);
    expect(await signedWith(() => client.send(new UploadPartCommand({ Bucket: 'b', Key: 'k', UploadId: 'u', PartNumber: 1, Body: body })))).toBe(bodyHash);
    client.destroy();
  });

  it('signs the hash of the body over plain HTTP to another host, where TLS does not keep it intact', async () => {
    const { client, signedWith } = signingClient('http://s3.example.invalid:9000');
    expect(await signedWith(() => client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: body })))).toBe(bodyHash);
    expect(await signedWith(() => client.send(new UploadPartCommand({ Bucket: 'b', Key: 'k', UploadId: 'u', PartNumber: 1, Body: body })))).toBe(bodyHash);
    client.destroy();
  });

  it('tells the start-up probe when uploads go unsigned: AWS\'s endpoints, https:// ones and loopback ones, unless --s3-sign-payloads', () => {
    expect(uploadsUnsigned({})).toBe(true);
    expect(uploadsUnsigned({ endpoint: 'HTTPS://minio.example:9000' })).toBe(true);
    expect(uploadsUnsigned({ endpoint: 'http://127.0.0.1:9000' })).toBe(true);
    expect(uploadsUnsigned({ endpoint: 'http://minio.example:9000' })).toBe(false);
    expect(uploadsUnsigned({ endpoint: 'http://127.0.0.1:9000', signPayloads: true })).toBe(false);
    expect(uploadsUnsigned({ signPayloads: true })).toBe(false);
  });

  it('leaves requests without a body as the SDK signs them', async () => {
    const { client, signedWith } = signingClient('https://s3.example.invalid');
    const emptyHash = createHash('sha256').update('').digest('hex');
    expect(await signedWith(() => client.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' })))).toBe(emptyHash);
    client.destroy();
  });
});

describe('the start-up probe of a store that refuses uploads signed without their hash', () => {
  const refusingPut = (unsignedUploads: boolean) => {
    const client = createS3Client({
      bucket: 'b', region: 'us-east-1', endpoint: 'https://s3.example.invalid', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      prefix: '', blobsPrefix: 'blobs/', manifestsPrefix: 'manifests/', metadataPrefix: 's3cs/', partSize: 8 << 20, uploadParallelism: 1, maxAttempts: 1,
    });
    client.middlewareStack.add(
      () => async () => {
        throw new S3ServiceException({ name: 'InvalidDigest', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'UNSIGNED-PAYLOAD PUT is not allowed' });
      },
      { step: 'initialize', name: 'refusePut' },
    );
    return probeBucket({ client, bucket: 'b', region: 'us-east-1', endpoint: 'https://s3.example.invalid', unsignedUploads, docKey: (name) => `s3cs/${name}` });
  };

  it('names --s3-sign-payloads when the uploads were unsigned', async () => {
    await expect(refusingPut(true)).rejects.toThrow(/PUT of s3cs\/check\/.* failed: InvalidDigest \(HTTP 400\); or the store refuses uploads signed UNSIGNED-PAYLOAD: set --s3-sign-payloads/);
  });

  it('does not when they were signed', async () => {
    const err = await refusingPut(false).catch((e: unknown) => e);
    expect(String(err)).toContain('failed: InvalidDigest (HTTP 400)');
    expect(String(err)).not.toContain('--s3-sign-payloads');
  });
});
