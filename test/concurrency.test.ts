import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { getObject, listKeys, newBucket, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

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
