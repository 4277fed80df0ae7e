import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { openBlobStore } from '../src/server.js';
import type { BlobStore, Upload } from '../src/blobstore/types.js';
import {
  getObject,
  newBucket,
  randomBlob,
  s3,
  startDaemon,
  useS3Credentials,
  writeBlob,
  type TestDaemon,
} from './support/harness.js';

describe('upload buffer budget', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    // room for exactly one part in the whole daemon
    d = await startDaemon({ flags: { partSize: '5MiB', maxBuffer: '5MiB' } });
  });
  afterAll(async () => d.stop());

  it('makes concurrent ingests wait for buffer space instead of growing, and completes them all', async () => {
    const blobs = [randomBlob(11 * 1024 * 1024), randomBlob(7 * 1024 * 1024), randomBlob(64 * 1024)];
    const client = d.content();
    const results = await Promise.all(blobs.map((b, i) => writeBlob(client, `budget-${i}`, b, { expected: digestOf(b), chunk: 256 * 1024 })));
    expect(results.map((r) => r.digest)).toEqual(blobs.map((b) => digestOf(b)));
    for (const b of blobs) expect((await getObject(d.bucket!, `blobs/${digestOf(b)}`)).equals(b)).toBe(true);
  });
});

describe('upload buffer budget, counted per upload', () => {
  it('covers every buffered byte, also when a client sends more than it first declared', async () => {
    useS3Credentials();
    const flags = { bucket: await newBucket(), endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB' };
    const store = await openBlobStore(resolveConfig(flags, {}), pino({ level: 'silent' }));
    try {
      const upload = store.createUpload({ sizeHint: 1000 });
      await upload.write(randomBlob(1000));
      expect(store.usage().uploadBuffer.inUse).toBe(1000);
      // the declared size was wrong: 3 MiB more arrive, and stay buffered (less than a part)
      await upload.write(randomBlob(3 * 1024 * 1024));
      expect(store.usage().uploadBuffer.inUse).toBe(3 * 1024 * 1024 + 1000);
      await upload.abort();
      expect(store.usage().uploadBuffer.inUse).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe('upload buffer budget, when spent', () => {
  const MiB = 1024 * 1024;
  let store: BlobStore;
  let bucket: string;
  beforeAll(async () => {
    useS3Credentials();
    bucket = await newBucket();
    // room for exactly one part, which an upload holds once it has buffered a part but a byte
    const flags = { bucket, endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB', maxBuffer: '5MiB' };
    store = await openBlobStore(resolveConfig(flags, {}), pino({ level: 'silent' }));
  });
  afterAll(async () => store.close());

  /**
   * A first upload holds the whole budget; a second one's first write is made. Before the first
   * gives its buffer back, the second write has had a real S3 round trip's worth of event-loop
   * turns to be accepted (it needs none if it is not held); the order of events says it was not.
   */
  async function secondWaitsFor(release: (first: Upload, written: Buffer) => Promise<void>): Promise<string[]> {
    const events: string[] = [];
    const first = store.createUpload({});
    const written = randomBlob(5 * MiB - 1);
    await first.write(written);
    events.push('first accepted');
    expect(store.usage().uploadBuffer.inUse).toBe(5 * MiB);

    const second = store.createUpload({});
    const accepted = second.write(randomBlob(1024)).then(() => events.push('second accepted'));
    await store.statBlob(digestOf('a round trip to S3'));
    await new Promise((r) => setImmediate(r));
    expect(store.usage().uploadBuffer.inUse).toBe(5 * MiB);

    events.push('first releases');
    await release(first, written);
    await accepted;
    await second.abort();
    expect(store.usage().uploadBuffer.inUse).toBe(0);
    return events;
  }

  it('holds a second writer until the first upload is aborted', async () => {
    expect(await secondWaitsFor((first) => first.abort())).toEqual(['first accepted', 'first releases', 'second accepted']);
  });

  it('holds a second writer until the first upload is committed', async () => {
    const events = await secondWaitsFor((first, written) => first.commit(digestOf(written), written.length));
    expect(events).toEqual(['first accepted', 'first releases', 'second accepted']);
  });

  it('holds a writer budget for about the bytes it buffered, not for the part it may never fill', async () => {
    const quiet = store.createUpload({});
    await quiet.write(randomBlob(1));
    expect(store.usage().uploadBuffer.inUse).toBeLessThanOrEqual(256 * 1024);
    // a writer that sent one byte and went quiet leaves the rest to others, at once
    const busy = store.createUpload({});
    let accepted = false;
    const writing = busy.write(randomBlob(4 * MiB)).then(() => (accepted = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(accepted).toBe(true);
    await writing;
    await Promise.all([quiet.abort(), busy.abort()]);
    expect(store.usage().uploadBuffer.inUse).toBe(0);
  });

  it('lets writers that each hold part of a part all finish their parts', async () => {
    // each buffers more than half the budget's part: neither can grow while the other holds its bytes
    const uploads = [store.createUpload({}), store.createUpload({})];
    const blobs = [randomBlob(5 * MiB - 1), randomBlob(5 * MiB - 1)];
    for (const [i, u] of uploads.entries()) await u.write(blobs[i]!.subarray(0, 2 * MiB));
    await Promise.all(
      uploads.map(async (u, i) => {
        await u.write(blobs[i]!.subarray(2 * MiB));
        await u.commit(digestOf(blobs[i]!), blobs[i]!.length);
      }),
    );
    for (const b of blobs) expect((await getObject(bucket, `blobs/${digestOf(b)}`)).equals(b)).toBe(true);
    expect(store.usage().uploadBuffer.inUse).toBe(0);
  });
});
