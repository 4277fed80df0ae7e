import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../src/blobstore/s3/store.js';
import { digestOf } from '../../src/digest.js';
import { collectorSourcesFor } from '../../src/gc/sources.js';
import { recentReferences, scanRoots } from '../../src/gc/roots.js';
import { LeaseStore } from '../../src/leases/store.js';
import { cacheConfig } from '../support/buildkit.js';

/** S3's order of keys: by their UTF-8 bytes (JavaScript's own compares UTF-16 units). */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * A bucket in memory that answers the store's LIST and GET requests as S3 does (keys in order,
 * StartAfter, MaxKeys up to 1,000). Tens of thousands of keys, which these pages must step over,
 * would take minutes to write to a real server on this machine. It counts LIST requests by
 * prefix, and how many were under way at once (each answers on a later turn of the event loop).
 */
function memoryBucket(
  objects: Map<string, Buffer>,
  /** LISTs of this prefix answer 503. */
  failing?: string,
): { client: S3Client; lists: () => number; listsOf: (prefix: string) => number; peakLists: () => number } {
  const sorted = [...objects.keys()].sort(byBytes);
  let lists = 0;
  const byPrefix = new Map<string, number>();
  let underWay = 0;
  let peak = 0;
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  client.send = (async (command: unknown) => {
    if (command instanceof ListObjectsV2Command) {
      lists++;
      const { Prefix = '', StartAfter = '', ContinuationToken, MaxKeys = 1000 } = command.input;
      byPrefix.set(Prefix, (byPrefix.get(Prefix) ?? 0) + 1);
      peak = Math.max(peak, ++underWay);
      await new Promise((resolve) => setTimeout(resolve, 1));
      underWay--;
      if (Prefix === failing) throw new S3ServiceException({ name: 'ServiceUnavailable', $fault: 'server', message: 'unavailable', $metadata: { httpStatusCode: 503 } });
      const after = ContinuationToken ?? StartAfter;
      const matching = sorted.filter((key) => key.startsWith(Prefix) && byBytes(key, after) > 0);
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
  return { client, lists: () => lists, listsOf: (prefix) => byPrefix.get(prefix) ?? 0, peakLists: () => peak };
}

/** A store on `bucket` for the tests of the enclosing describe, closed after them. */
function storeIn(bucket: { client: S3Client }, blobsPrefix: string, manifestsPrefix: string): () => S3BlobStore {
  let store: S3BlobStore | undefined;
  beforeAll(() => {
    store = new S3BlobStore(
      { bucket: 'b', region: 'us-east-1', prefix: '', blobsPrefix, manifestsPrefix, metadataPrefix: 's3cs/', partSize: 5 * 1024 ** 2, uploadParallelism: 1 },
      bucket.client,
    );
  });
  afterAll(async () => store?.close());
  return () => store!;
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
  const store = storeIn(bucket, 'cache/', 'cache/');

  it('reads past at most 10,000 keys a call, so a page may come back empty, and still reaches every record', async () => {
    const names: string[] = [];
    let empty = 0;
    let after = '';
    for (let calls = 0; ; calls++) {
      expect(calls).toBeLessThan(10);
      const before = bucket.lists();
      const page = await store().listRecords('', after, 100);
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
    const roots = await scanRoots(collectorSourcesFor(store(), new LeaseStore(store())));
    expect([...roots.recordLayers.keys()].sort()).toEqual(['a-first', 'zz-last']);
    expect(roots.digests.has(digestOf(layer))).toBe(true);
  });
});

describe('the collector\'s listings of records among 25,000 blobs under equal prefixes', () => {
  const objects = new Map<string, Buffer>();
  for (let i = 0; i < 25_000; i++) objects.set(`cache/${digestOf(`blob ${i}`)}`, Buffer.from('x'));
  // records before the blobs, among them (names that begin like a digest) and after them
  const names = ['a-first', 'sha256:0-not-a-digest', 'sha256:f\u{1F600}', 'zz-last'];
  const layers = new Map(names.map((name) => [name, Buffer.from(`the layer of ${name}`)]));
  for (const [name, layer] of layers) {
    objects.set(`cache/${digestOf(layer)}`, layer);
    objects.set(`cache/${name}`, cacheConfig([layer]));
  }
  const bucket = memoryBucket(objects);
  const store = storeIn(bucket, 'cache/', 'cache/');

  it('reads every record once, wherever it sorts among the blobs', async () => {
    const roots = await scanRoots(collectorSourcesFor(store(), new LeaseStore(store())));
    expect([...roots.recordLayers.keys()].sort()).toEqual([...names].sort());
    expect(roots.counts.records).toBe(names.length);
  });

  it('in the last check, lists them in shards side by side, none walking more than its share of the blobs', async () => {
    const before = (prefix: string) => bucket.listsOf(prefix);
    const counts = ['cache/', ...[...'0123456789abcdef'].map((h) => `cache/sha256:${h}`)].map((prefix) => [prefix, before(prefix)] as const);
    const found = await recentReferences(collectorSourcesFor(store(), new LeaseStore(store())), { startedAt: Date.now(), recordVersions: new Map() });
    for (const layer of layers.values()) expect(found.has(digestOf(layer))).toBe(true);
    // one listing of all would take 26 requests one after another; a shard holds about 1,600 blobs
    for (const [prefix, was] of counts) expect(bucket.listsOf(prefix) - was, prefix).toBeLessThanOrEqual(3);
    expect(bucket.peakLists()).toBeGreaterThanOrEqual(17);
  });
});

describe('the collector\'s listings of records among blobs when one shard fails', () => {
  const objects = new Map<string, Buffer>();
  for (let i = 0; i < 25_000; i++) objects.set(`cache/${digestOf(`blob ${i}`)}`, Buffer.from('x'));
  const bucket = memoryBucket(objects, 'cache/sha256:0');
  const store = storeIn(bucket, 'cache/', 'cache/');

  it('fails once every listing has stopped, leaving none to read on after it', async () => {
    await expect(scanRoots(collectorSourcesFor(store(), new LeaseStore(store())))).rejects.toThrow();
    const atFailure = bucket.lists();
    // each LIST answers within a few milliseconds: a listing left going would have sent dozens
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(bucket.lists()).toBe(atFailure);
  });
});

describe('record listings where the daemon\'s documents lie among the records (an empty manifests prefix)', () => {
  const objects = new Map<string, Buffer>();
  for (let i = 0; i < 25_000; i++) objects.set(`s3cs/v1/ns/default/content/${digestOf(`blob ${i}`)}`, Buffer.from('{}'));
  for (const name of ['buildkit', 's3cs-old', 'zz']) objects.set(name, cacheConfig([]));
  const bucket = memoryBucket(objects);
  const store = storeIn(bucket, 'blobs/', '');

  it('steps over the documents in one request rather than walking them', async () => {
    const before = bucket.lists();
    const page = await store().listRecords('', '', 100);
    expect(page.entries.map((e) => e.name)).toEqual(['buildkit', 's3cs-old', 'zz']);
    expect(page.next).toBeUndefined();
    expect(bucket.lists() - before).toBeLessThanOrEqual(2);
  });

  it('ends a listing whose prefix lies among the documents without a page token outside that prefix', async () => {
    const page = await store().listRecords('s3cs/v1/', '', 100);
    expect(page).toEqual({ entries: [] });
  });
});
