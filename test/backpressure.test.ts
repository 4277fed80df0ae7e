import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/content/digest.js';
import { getObject, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

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
