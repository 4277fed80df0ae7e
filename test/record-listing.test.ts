import { describe, expect, it } from 'vitest';
import { createS3Client, S3Bucket } from '../src/blobstore/s3/client.js';
import { KeyLayout } from '../src/blobstore/s3/keys.js';
import { listRecordPage } from '../src/blobstore/s3/record-listing.js';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { newBucket, putObject, s3, useS3Credentials } from './support/harness.js';

/**
 * Listings of records that step over blobs and documents sharing their key space, on a real S3:
 * pages of two keys, so that every step over is a request that starts after a name S3 must order
 * by its UTF-8 bytes.
 */
describe('record listings over a key space that blobs, documents and records share', () => {
  const keys = new KeyLayout({ prefix: '', blobsPrefix: 'cache/', manifestsPrefix: 'cache/', metadataPrefix: 'cache/s3cs/' });
  const records = ['a-first', 's3cs-old', 'sha256:0-not-a-digest', 'sha256:Z', 'sha256:f\u{1F600}', 'zz-last'];

  async function filledBucket(): Promise<S3Bucket> {
    useS3Credentials();
    const bucket = await newBucket();
    const config = resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region }, {});
    const blobs = ['0', '3', '9', 'a', 'f'].map((first) => {
      for (let i = 0; ; i++) {
        const d = digestOf(`blob ${first} ${i}`);
        if (d.startsWith(`sha256:${first}`)) return d;
      }
    });
    const all = [
      ...blobs.map((d) => `cache/${d}`),
      ...['v1/namespaces/default', 'v1/ns/default/content/x', 'v1/gc-lock'].map((doc) => `cache/s3cs/${doc}`),
      ...records.map((name) => `cache/${name}`),
    ];
    await Promise.all(all.map((key) => putObject(bucket, key, Buffer.from(key))));
    return new S3Bucket(createS3Client(config.s3!), config.s3!);
  }

  async function namesOf(bucket: S3Bucket, prefix: string, outside: readonly string[]): Promise<string[]> {
    const names: string[] = [];
    let startAfter = '';
    for (let calls = 0; calls < 50; calls++) {
      const page = await listRecordPage(bucket, keys, { prefix, startAfter, limit: 100, outside, pageKeys: 2 });
      names.push(...page.entries.map((e) => e.name));
      if (page.next === undefined) return names;
      startAfter = page.next;
    }
    throw new Error('the listing did not end');
  }

  it('finds each record in exactly one of the shards or the rest, never a blob or a document', async () => {
    const bucket = await filledBucket();
    const shards = keys.recordShards();
    const rest = await namesOf(bucket, '', shards);
    const inShards = (await Promise.all(shards.map((shard) => namesOf(bucket, shard, [])))).flat();
    expect(rest).toEqual(['a-first', 's3cs-old', 'sha256:Z', 'zz-last']);
    expect(inShards.sort()).toEqual(['sha256:0-not-a-digest', 'sha256:f\u{1F600}']);
  });

  it('finds every record in one listing that leaves no prefix out', async () => {
    const bucket = await filledBucket();
    expect(await namesOf(bucket, '', [])).toEqual(records);
  });
});
