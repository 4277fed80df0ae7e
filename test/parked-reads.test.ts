import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { resolveConfig, type Config } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { collect, newBucket, ns, putObject, randomBlob, s3, startDaemon, type TestDaemon, until, useS3Credentials, writeBlob } from './support/harness.js';
import { countGets } from './support/s3-requests.js';

const MiB = 1024 * 1024;


/** A daemon on the S3 store given back, whose client records every GET it sends. */
async function daemonCountingGets(): Promise<{ d: TestDaemon; store: S3BlobStore; gets: string[] }> {
  let store: S3BlobStore | undefined;
  let gets: string[] = [];
  const d = await startDaemon({
    store: (config: Config) => {
      const client = createS3Client(config.s3!);
      gets = countGets(client);
      store = new S3BlobStore(config.s3!, client);
      return store;
    },
  });
  return { d, store: store!, gets };
}

/** One Read call, as containerd's content proxy makes them: an offset and a size. */
async function readAt(client: ContentClient, digest: string, offset: number, size: number): Promise<Buffer> {
  const chunks = await collect<ReadContentResponse__Output>(client.Read({ digest, offset, size }, ns()));
  return Buffer.concat(chunks.map((c) => c.data));
}

describe('a Read that continues where the last one stopped', () => {
  let d: TestDaemon;
  let gets: string[];
  let client: ContentClient;
  const getsOf = (digest: string) => gets.filter((key) => key === `blobs/${digest}`).length;

  beforeAll(async () => {
    ({ d, gets } = await daemonCountingGets());
    client = d.content();
  });
  afterAll(async () => d.stop());

  it('is served from the GET the previous Read left open: a blob read 1 MiB at a time costs one GET', async () => {
    const data = randomBlob(6 * MiB + 12_345);
    const digest = digestOf(data);
    await writeBlob(client, 'sequential', data, { expected: digest });
    const parts: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += MiB) {
      parts.push(await readAt(client, digest, offset, Math.min(MiB, data.length - offset)));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(getsOf(digest)).toBe(1);
  });

  it('opens a new GET for a Read at another offset, and each open GET continues at its own offset', async () => {
    const data = randomBlob(6 * MiB);
    const digest = digestOf(data);
    await writeBlob(client, 'jumping', data, { expected: digest });

    expect((await readAt(client, digest, 0, MiB)).equals(data.subarray(0, MiB))).toBe(true);
    expect(getsOf(digest)).toBe(1);
    // not where the first Read stopped (1 MiB): that response cannot serve it
    expect((await readAt(client, digest, 3 * MiB, MiB)).equals(data.subarray(3 * MiB, 4 * MiB))).toBe(true);
    expect(getsOf(digest)).toBe(2);
    // both responses stay open, each at the offset where its Read stopped
    expect((await readAt(client, digest, 4 * MiB, MiB)).equals(data.subarray(4 * MiB, 5 * MiB))).toBe(true);
    expect((await readAt(client, digest, MiB, MiB)).equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    expect(getsOf(digest)).toBe(2);
  });
});

describe('the read-ahead budget', () => {
  let d: TestDaemon;
  let store: S3BlobStore;
  let client: ContentClient;
  const readAhead = () => store.usage().readAhead.inUse;

  beforeAll(async () => {
    ({ d, store } = await daemonCountingGets());
    client = d.content();
  });
  afterAll(async () => d.stop());

  it('is all given back once a blob has been read to its end', async () => {
    const data = randomBlob(4 * MiB + 777);
    const digest = digestOf(data);
    await writeBlob(client, 'to-the-end', data, { expected: digest });
    const parts = [await readAt(client, digest, 0, MiB)];
    // parked, the response reads on into memory (128 KiB until a Read continues it): the budget counts it
    await until(() => readAhead() >= 128 * 1024);
    for (let offset = MiB; offset < data.length; offset += MiB) {
      parts.push(await readAt(client, digest, offset, Math.min(MiB, data.length - offset)));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    await until(() => readAhead() === 0, 5_000);
  });

  it('is given back when a parked read is left unclaimed until its idle timeout (10 s)', async () => {
    const data = randomBlob(4 * MiB);
    const digest = digestOf(data);
    await writeBlob(client, 'left-parked', data, { expected: digest });
    expect((await readAt(client, digest, 0, MiB)).equals(data.subarray(0, MiB))).toBe(true);
    await until(() => readAhead() >= 128 * 1024);
    await until(() => readAhead() === 0, 20_000);
  }, 40_000);
});

describe('the read-ahead budget, at the store', () => {
  let store: S3BlobStore;
  const data = randomBlob(4 * MiB);
  const digest = digestOf(data);

  beforeAll(async () => {
    useS3Credentials();
    const bucket = await newBucket();
    await putObject(bucket, `blobs/${digest}`, data);
    const config = resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region }, {});
    store = new S3BlobStore(config.s3!);
  });
  afterAll(async () => store.close());

  it('is given back when a read continuing a parked one is left early, as a cancelled Read leaves it', async () => {
    for await (const _ of await store.readBlob(digest, 0, MiB, { size: data.length })) void _;
    await until(() => store.usage().readAhead.inUse >= 128 * 1024);

    // more than was read ahead: a stream
    const rest = ((await store.readBlob(digest, MiB, data.length - MiB, { size: data.length })) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await rest.next();
    const piece = first.value as Buffer;
    expect(piece.equals(data.subarray(MiB, MiB + piece.length))).toBe(true);
    // what was read ahead and not yet taken is still counted
    expect(store.usage().readAhead.inUse).toBeGreaterThan(0);
    await rest.return?.(undefined);
    expect(store.usage().readAhead.inUse).toBe(0);
  });
});
