import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { call, getObject, listKeys, newBucket, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

/** Each writer either stores the blob or is told it already exists; nothing else is acceptable. */
async function settleWrites(writes: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(writes);
  for (const r of results) {
    if (r.status === 'rejected') expect((r.reason as { code: number }).code).toBe(status.ALREADY_EXISTS);
  }
  expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
}

describe('the same content written at once', () => {
  let a: TestDaemon;
  let b: TestDaemon;
  beforeAll(async () => {
    const bucket = await newBucket();
    a = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
    b = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
  });
  afterAll(async () => {
    await a.stop();
    await b.stop();
  });

  it('through two daemons sharing a bucket: all succeed or get AlreadyExists, one object with the right bytes', async () => {
    const data = randomBlob(12 * 1024 * 1024 + 7);
    const digest = digestOf(data);
    await settleWrites([
      writeBlob(a.content(), 'from-a', data, { expected: digest }),
      writeBlob(b.content(), 'from-b', data, { expected: digest }),
      writeBlob(a.content(), 'from-a-2', data),
      writeBlob(b.content(), 'from-b-2', data),
    ]);
    expect(await listKeys(a.bucket!, `blobs/${digest}`)).toEqual([`blobs/${digest}`]);
    expect((await getObject(a.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('through two refs on one daemon, small blobs too', async () => {
    const data = randomBlob(3000);
    const digest = digestOf(data);
    await settleWrites(Array.from({ length: 6 }, (_, i) => writeBlob(a.content(), `ref-${i}`, data, { expected: i % 2 ? digest : undefined })));
    expect((await getObject(a.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
    expect(await listKeys(a.bucket!, 's3cs/staging/')).toEqual([]);
  });
});

describe('labels changed at once', () => {
  let a: TestDaemon;
  let b: TestDaemon;
  beforeAll(async () => {
    const bucket = await newBucket();
    a = await startDaemon({ bucket });
    b = await startDaemon({ bucket });
  });
  afterAll(async () => {
    await a.stop();
    await b.stop();
  });

  type InfoReply = { info: { labels: Record<string, string> } };
  const label = (d: TestDaemon, digest: string, key: string, value: string) =>
    call<object, InfoReply>(d.content(), 'Update', { info: { digest, labels: { [key]: value } }, update_mask: { paths: [`labels.${key}`] } });

  it('through two daemons: an Update on one keeps a label the other set a moment before, though it read the blob earlier', async () => {
    const data = randomBlob(2000);
    const digest = digestOf(data);
    await writeBlob(a.content(), 'labelled', data, { expected: digest });
    await label(a, digest, 'x', '1');
    // b reads the blob (and remembers its hold), then a changes it
    expect((await call<object, InfoReply>(b.content(), 'Info', { digest })).info.labels).toEqual({ x: '1' });
    await label(a, digest, 'y', '2');
    const updated = await label(b, digest, 'z', '3');
    expect(updated.info.labels).toEqual({ x: '1', y: '2', z: '3' });
    // what the bucket holds (a's own Info may answer from its cache for up to 30 s)
    const [hold] = await listKeys(a.bucket!, `s3cs/v1/ns/test/content/${digest}`);
    expect((JSON.parse((await getObject(a.bucket!, hold!)).toString()) as { labels: object }).labels).toEqual({ x: '1', y: '2', z: '3' });
  });

  it('through one daemon: Updates of different labels of one blob sent at once all stay', async () => {
    const data = randomBlob(2100);
    const digest = digestOf(data);
    await writeBlob(a.content(), 'labelled-at-once', data, { expected: digest });
    await Promise.all(Array.from({ length: 6 }, (_, i) => label(a, digest, `k${i}`, String(i))));
    const info = await call<object, InfoReply>(b.content(), 'Info', { digest });
    expect(info.info.labels).toEqual({ k0: '0', k1: '1', k2: '2', k3: '3', k4: '4', k5: '5' });
  });
});
