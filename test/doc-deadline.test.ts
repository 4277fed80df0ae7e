import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { FsBlobStore } from '../src/blobstore/fs.js';
import { newBucket, s3, useS3Credentials } from './support/harness.js';
import { RequestLog } from './support/s3-requests.js';

/**
 * A document's DELETE with a deadline (the collector's lock, lock.ts) sends nothing past it: an
 * attempt that went out later could land after another collector took the lock.
 */
describe('a document DELETE with a deadline', () => {
  it('on S3, is not sent once held back past its deadline, and the document stays', async () => {
    useS3Credentials();
    const bucket = await newBucket();
    const config = resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region }, {});
    const client = createS3Client(config.s3!);
    const log = new RequestLog(client);
    const store = new S3BlobStore(config.s3!, client);
    try {
      await store.putDoc('gc/lock', Buffer.from('{"owner":"a"}'));
      // held before it goes out, as a retry waits out its back-off
      log.intercept = (op) => (op === 'DeleteObject' ? new Promise((resolve) => setTimeout(resolve, 1_000)) : undefined);
      await expect(store.deleteDoc('gc/lock', { deadline: Date.now() + 300 })).rejects.toThrow(/abort|deadline/i);
      log.intercept = undefined;
      // past when the held attempt would have gone out
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect((await store.getDoc('gc/lock'))?.body.toString()).toBe('{"owner":"a"}');
      await store.deleteDoc('gc/lock', { deadline: Date.now() + 5_000 });
      expect(await store.getDoc('gc/lock')).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('in a local directory, is not done once its deadline passed, and the document stays', async () => {
    const root = await mkdtemp(join(tmpdir(), 's3cs-doc-deadline-'));
    try {
      const store = new FsBlobStore(root);
      await store.init();
      await store.putDoc('gc/lock', Buffer.from('{"owner":"a"}'));
      await expect(store.deleteDoc('gc/lock', { deadline: Date.now() - 1 })).rejects.toThrow(/deadline passed/);
      expect((await store.getDoc('gc/lock'))?.body.toString()).toBe('{"owner":"a"}');
      await store.deleteDoc('gc/lock', { deadline: Date.now() + 5_000 });
      expect(await store.getDoc('gc/lock')).toBeUndefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
