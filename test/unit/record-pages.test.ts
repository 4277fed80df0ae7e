import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../src/blobstore/s3/store.js';
import { digestOf } from '../../src/digest.js';
import { collectorSourcesFor } from '../../src/gc/sources.js';
import { scanRoots } from '../../src/gc/roots.js';
import { LeaseStore } from '../../src/leases/store.js';
import { cacheConfig } from '../support/buildkit.js';

/**
 * A bucket in memory that answers the store's LIST and GET requests as S3 does (keys in order,
 * StartAfter, MaxKeys up to 1,000). Tens of thousands of keys, which these pages must step over,
 * would take minutes to write to a real server on this machine.
 */
function memoryBucket(objects: Map<string, Buffer>): { client: S3Client; lists: () => number } {
  const sorted = [...objects.keys()].sort();
  let lists = 0;
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  client.send = (async (command: unknown) => {
    if (command instanceof ListObjectsV2Command) {
      lists++;
      const { Prefix = '', StartAfter = '', ContinuationToken, MaxKeys = 1000 } = command.input;
      const after = ContinuationToken ?? StartAfter;
      const matching = sorted.filter((key) => key.startsWith(Prefix) && key > after);
      const page = matching.slice(0, Math.min(MaxKeys, 1000));
      const truncated = matching.length > page.length;
      return {
        Contents: page.map((Key) => ({ Key, Size: objects.get(Key)!.length, LastModified: new Date(0) })),
        IsTruncated: truncated,
        ...(truncated ? { NextContinuationToken: page.at(-1) } : {}),
      };
    }
    if (command instanceof GetObjectCommand) {
      const body = objects.get(command.input.Key!);
      if (!body) throw new NoSuchKey({ message: 'no such key', $metadata: { httpStatusCode: 404 } });
      return { Body: { transformToByteArray: async () => new Uint8Array(body) }, LastModified: new Date(0) };
    }
    throw new Error(`the memory bucket does not answer ${(command as object).constructor.name}`);
  }) as S3Client['send'];
  return { client, lists: () => lists };
}

describe('record pages under blobs and manifests prefixes that are equal', () => {
  const layer = Buffer.from('a layer');
  const objects = new Map<string, Buffer>();
  // many more blobs than one call may read past, with a record before them and one after
  for (let i = 0; i < 25_000; i++) objects.set(`cache/${digestOf(`blob ${i}`)}`, Buffer.from('x'));
  objects.set(`cache/${digestOf(layer)}`, layer);
  objects.set('cache/a-first', cacheConfig([layer]));
  objects.set('cache/zz-last', cacheConfig([layer]));
  const bucket = memoryBucket(objects);
  let store: S3BlobStore;

  beforeAll(() => {
    store = new S3BlobStore(
      { bucket: 'b', region: 'us-east-1', prefix: '', blobsPrefix: 'cache/', manifestsPrefix: 'cache/', metadataPrefix: 's3cs/', partSize: 5 * 1024 ** 2, uploadParallelism: 1 },
      bucket.client,
    );
  });
  afterAll(async () => store.close());

  it('reads past at most 10,000 keys a call, so a page may come back empty, and still reaches every record', async () => {
    const names: string[] = [];
    let empty = 0;
    let after = '';
    for (let calls = 0; ; calls++) {
      expect(calls).toBeLessThan(10);
      const before = bucket.lists();
      const page = await store.listRecords('', after, 100);
      expect(bucket.lists() - before).toBeLessThanOrEqual(10);
      names.push(...page.entries.map((e) => e.name));
      if (page.entries.length === 0) empty++;
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(names).toEqual(['a-first', 'zz-last']);
    expect(empty).toBeGreaterThan(0);
  });

  it('lets the collector\'s mark phase read every record, past pages that held none', async () => {
    const roots = await scanRoots(collectorSourcesFor(store, new LeaseStore(store)));
    expect([...roots.recordLayers.keys()].sort()).toEqual(['a-first', 'zz-last']);
    expect(roots.digests.has(digestOf(layer))).toBe(true);
  });
});
