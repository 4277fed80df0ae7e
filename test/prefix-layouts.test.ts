import { CreateMultipartUploadCommand, AbortMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/blobstore/types.js';
import { resolveConfig } from '../src/config.js';
import { digestOf, isValidDigest } from '../src/digest.js';
import { Collector } from '../src/gc/collector.js';
import { collectorSourcesFor } from '../src/gc/sources.js';
import type { GetRecordResponse__Output } from '../src/generated/s3cs/records/v1/GetRecordResponse.js';
import type { InfoResponse__Output } from '../src/generated/containerd/services/content/v1/InfoResponse.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import type { ListRecordsResponse__Output } from '../src/generated/s3cs/records/v1/ListRecordsResponse.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { LeaseStore } from '../src/leases/store.js';
import { openBlobStore } from '../src/server.js';
import { cacheConfig } from './support/buildkit.js';
import {
  call,
  collect,
  failure,
  getObject,
  listKeys,
  ns,
  putObject,
  randomBlob,
  rawS3,
  s3,
  startDaemon,
  until,
  useS3Credentials,
  writeBlob,
  type TestDaemon,
  collectUntil,
} from './support/harness.js';

/** Bytes whose digest, used as a record name, is what some layouts cannot tell from a blob. */
const BLOB_LIKE = Buffer.from('a blob whose digest is also tried as a record name');
const BLOB_LIKE_NAME = digestOf(BLOB_LIKE);

/**
 * Layouts BuildKit accepts that share key space, each with the record names it makes
 * ambiguous (and the words of the refusal), or a digest-like name it does not.
 */
const layouts = [
  {
    label: 'equal blobs and manifests prefixes',
    prefix: 'team/',
    blobs: 'cache/app/',
    manifests: 'cache/app/',
    refused: [{ name: BLOB_LIKE_NAME, says: 'would be read as a blob' }],
  },
  {
    label: 'manifests nested inside blobs',
    prefix: 'team/',
    blobs: 'cache/',
    manifests: 'cache/manifests/',
    refused: [],
    accepted: BLOB_LIKE_NAME,
  },
  {
    label: 'blobs nested inside manifests',
    prefix: 'team/',
    blobs: 'cache/blobs/',
    manifests: 'cache/',
    refused: [{ name: `blobs/${BLOB_LIKE_NAME}`, says: 'would be read as a blob' }],
    accepted: BLOB_LIKE_NAME,
  },
  {
    label: 'empty prefix, blobs prefix and manifests prefix',
    prefix: '',
    blobs: '',
    manifests: '',
    refused: [
      { name: BLOB_LIKE_NAME, says: 'would be read as a blob' },
      { name: 's3cs/v1/gc-lock', says: 'falls under the daemon\'s metadata prefix "s3cs/"' },
    ],
  },
];

describe.each(layouts)('bucket layout with $label', ({ prefix, blobs, manifests, refused, accepted }) => {
  const flags = { prefix, blobsPrefix: blobs, manifestsPrefix: manifests };
  const blobKey = (digest: string) => `${prefix}${blobs}${digest}`;
  const recordKey = (name: string) => `${prefix}${manifests}${name}`;
  const metadata = `${prefix}s3cs/`;
  const quiet = pino({ level: 'silent' });
  let d: TestDaemon;
  let bucket: string;
  /** Every blob and record the tests stored so far, to hold listings to exactly these. */
  const storedBlobs = new Set<string>();
  const storedRecords = new Set<string>();

  const bucketListing = async () =>
    (await collect<ListContentResponse__Output>(d.content().List({ filters: [] }, ns('bucket')))).flatMap((r) => r.info.map((i) => i.digest)).sort();
  /** Every record name, a page of one at a time, so that pages must step over blobs and documents. */
  const recordListing = async () => {
    const names: string[] = [];
    let token = '';
    do {
      const page = await call<object, ListRecordsResponse__Output>(d.records(), 'List', { prefix: '', page_size: 1, page_token: token });
      names.push(...page.records.map((r) => r.name));
      token = page.next_page_token;
    } while (token);
    return names;
  };
  const putBuildKitBlob = async (data: Buffer) => {
    await putObject(bucket, blobKey(digestOf(data)), data);
    storedBlobs.add(digestOf(data));
  };

  beforeAll(async () => {
    d = await startDaemon({ flags });
    bucket = d.bucket!;
    // the daemon's own documents exist from here on, where a listing could mistake them
    const held = randomBlob(700);
    await writeBlob(d.content(), 'held', held, { expected: digestOf(held), labels: { team: 'a' } });
    storedBlobs.add(digestOf(held));
    expect((await listKeys(bucket, metadata)).length).toBeGreaterThan(0);
  });
  afterAll(async () => d?.stop());

  it('serves a cache BuildKit wrote: its blobs through the Content API, its record through Get, each listed as what it is', async () => {
    const layers = [randomBlob(4000), randomBlob(1_200_000), randomBlob(90)];
    for (const layer of layers) await putBuildKitBlob(layer);
    const config = cacheConfig(layers);
    await putObject(bucket, recordKey('from-buildkit'), config);
    storedRecords.add('from-buildkit');

    for (const layer of layers) {
      const digest = digestOf(layer);
      const info = await call<object, InfoResponse__Output>(d.content(), 'Info', { digest }, ns('default'));
      expect(info.info).toMatchObject({ digest, size: layer.length });
      const chunks = await collect<ReadContentResponse__Output>(d.content().Read({ digest }, ns('default')));
      expect(Buffer.concat(chunks.map((c) => c.data)).equals(layer)).toBe(true);
    }
    const record = await call<object, GetRecordResponse__Output>(d.records(), 'Get', { name: 'from-buildkit' });
    expect(record.config.equals(config)).toBe(true);
    expect(await bucketListing()).toEqual([...storedBlobs].sort());
    expect(await recordListing()).toEqual([...storedRecords].sort());
  });

  it('writes a cache through the daemon where BuildKit reads it, every key a blob, a record or the daemon\'s own', async () => {
    const layers = [randomBlob(9000), randomBlob(2_100_000)];
    // one with its digest known up front (straight to its key), one without (staged, then copied)
    await writeBlob(d.content(), 'layer-0', layers[0]!, { expected: digestOf(layers[0]!) });
    await writeBlob(d.content(), 'layer-1', layers[1]!);
    layers.forEach((l) => storedBlobs.add(digestOf(l)));
    const config = cacheConfig(layers);
    await call(d.records(), 'Put', { names: ['app', 'main'], config });
    storedRecords.add('app').add('main');

    for (const name of ['app', 'main']) expect((await getObject(bucket, recordKey(name))).equals(config)).toBe(true);
    for (const layer of layers) expect((await getObject(bucket, blobKey(digestOf(layer)))).equals(layer)).toBe(true);
    for (const key of await listKeys(bucket)) {
      const known =
        key.startsWith(metadata) ||
        [...storedBlobs].some((digest) => key === blobKey(digest)) ||
        [...storedRecords].some((name) => key === recordKey(name));
      expect(known, key).toBe(true);
    }
    expect(await bucketListing()).toEqual([...storedBlobs].sort());
    expect(await recordListing()).toEqual([...storedRecords].sort());
  });

  it('refuses, with InvalidArgument naming why, exactly the record names this layout cannot tell from a blob or its metadata', async () => {
    await putBuildKitBlob(BLOB_LIKE);
    const config = cacheConfig([BLOB_LIKE]);
    for (const { name, says } of refused) {
      for (const attempt of [
        call(d.records(), 'Put', { names: [name], config }),
        call(d.records(), 'Get', { name }),
        call(d.records(), 'Delete', { name }),
      ]) {
        const err = await failure(attempt);
        expect(err.code).toBe(status.INVALID_ARGUMENT);
        expect(err.details).toContain(says);
      }
    }
    // the blob the name would have met is untouched
    expect((await getObject(bucket, blobKey(BLOB_LIKE_NAME))).equals(BLOB_LIKE)).toBe(true);
    if (accepted) {
      await call(d.records(), 'Put', { names: [accepted], config });
      storedRecords.add(accepted);
      expect((await getObject(bucket, recordKey(accepted))).equals(config)).toBe(true);
    }
    expect(await bucketListing()).toEqual([...storedBlobs].sort());
    expect(await recordListing()).toEqual([...storedRecords].sort());
  });

  it('sweeps uploads nobody owns from its staging area and blob keys, never a record\'s upload', async () => {
    const s3c = rawS3();
    const start = async (key: string) => (await s3c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))).UploadId!;
    const uploads = async () => ((await s3c.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.UploadId);
    const staged = await start(`${metadata}staging/2026-01-01/left-by-a-crash`);
    const blobUpload = await start(blobKey(digestOf(randomBlob(16))));
    // BuildKit uploads a large record in parts too
    const recordUpload = await start(recordKey('large-record'));
    await new Promise((r) => setTimeout(r, 1_500));

    const sweeper = await startDaemon({ bucket, flags: { ...flags, orphanUploadGrace: '1s', ingestExpiry: '1s' } });
    try {
      await until(async () => {
        const left = await uploads();
        return !left.includes(staged) && !left.includes(blobUpload);
      });
      expect(await uploads()).toContain(recordUpload);
    } finally {
      await sweeper.stop();
      await s3c.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: recordKey('large-record'), UploadId: recordUpload }));
    }
  });

  it('collects only blobs: an unreferenced one goes, records and what they name stay, notes name blobs only', async () => {
    useS3Credentials();
    const store: BlobStore = await openBlobStore(
      resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region, ...flags }, {}),
      quiet,
    );
    try {
      // as BuildKit's exporter would: a record keeping the blob whose digest some layouts refuse as a name
      await putObject(bucket, recordKey('kept-by-buildkit'), cacheConfig([BLOB_LIKE]));
      storedRecords.add('kept-by-buildkit');
      const unreferenced = randomBlob(3000);
      await putBuildKitBlob(unreferenced);
      storedBlobs.delete(digestOf(unreferenced));
      const before = new Map<string, Buffer>();
      for (const name of storedRecords) before.set(name, await getObject(bucket, recordKey(name)));
      // S3 keeps times to the second: a blob written just now may look younger than a touch refresh of 0
      await new Promise((r) => setTimeout(r, 1_100));

      const collector = new Collector(collectorSourcesFor(store, new LeaseStore(store)), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
      const listNotes = async () => (await listKeys(bucket, `${metadata}v1/reclaim/`)).map((k) => k.slice(`${metadata}v1/reclaim/`.length));
      // a run whose lock was slow to read back under load gives way and writes nothing: run again
      await collectUntil(() => collector.run({ delete: true }), async () => (await listNotes()).length > 0);
      const notes = await listNotes();
      expect(notes.length).toBeGreaterThan(0);
      for (const note of notes) expect(isValidDigest(note), note).toBe(true);
      const gone = async () => (await listKeys(bucket, blobKey(digestOf(unreferenced)))).length === 0;
      const reports = await collectUntil(() => collector.run({ delete: true }), gone);

      expect(reports.reduce((n, r) => n + r.reclaimed.count, 0)).toBe(1);
      expect(reports.at(-1)!.brokenRecords).toEqual([]);
      expect(await listKeys(bucket, blobKey(digestOf(unreferenced)))).toEqual([]);
      for (const [name, body] of before) expect((await getObject(bucket, recordKey(name))).equals(body)).toBe(true);
      expect(await bucketListing()).toEqual([...storedBlobs].sort());
      expect(await recordListing()).toEqual([...storedRecords].sort());
    } finally {
      await store.close();
    }
  });
});
