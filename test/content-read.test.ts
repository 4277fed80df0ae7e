import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { collect, failure, ns, randomBlob, rawS3, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

describe('Read on S3', () => {
  let d: TestDaemon;
  let client: ContentClient;
  const data = randomBlob(3 * 1024 * 1024 + 4321);
  const digest = digestOf(data);

  const read = (request: { digest: string; offset?: number; size?: number }, namespace = 'test') =>
    collect<ReadContentResponse__Output>(client.Read(request, ns(namespace)));

  beforeAll(async () => {
    d = await startDaemon();
    client = d.content();
    await writeBlob(client, 'read-fixture', data, { expected: digest });
  });
  afterAll(async () => d.stop());

  it('streams the whole blob in chunks of at most 1 MiB, each with its absolute offset', async () => {
    const chunks = await read({ digest });
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
    let expectedOffset = 0;
    for (const c of chunks) {
      expect(c.offset).toBe(expectedOffset);
      expect(c.data.length).toBeLessThanOrEqual(1024 * 1024);
      expectedOffset += c.data.length;
    }
  });

  it('keeps concurrent Reads of different blobs apart, byte for byte', async () => {
    const other = randomBlob(2 * 1024 * 1024 + 99);
    const otherDigest = digestOf(other);
    await writeBlob(client, 'read-fixture-other', other, { expected: otherDigest });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? read({ digest }) : read({ digest: otherDigest }))),
    );
    results.forEach((chunks, i) => {
      expect(Buffer.concat(chunks.map((c) => c.data)).equals(i % 2 === 0 ? data : other)).toBe(true);
    });
  });

  it('reads a window given by offset and size', async () => {
    const chunks = await read({ digest, offset: 1_500_000, size: 2_000_000 });
    expect(chunks[0]!.offset).toBe(1_500_000);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data.subarray(1_500_000, 3_500_000))).toBe(true);
  });

  it('reads to the end when offset plus size runs past it', async () => {
    const chunks = await read({ digest, offset: data.length - 10, size: 1000 });
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data.subarray(data.length - 10))).toBe(true);
  });

  it('treats a negative offset as 0, as containerd does', async () => {
    const chunks = await read({ digest, offset: -7, size: 5 });
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data.subarray(0, 5))).toBe(true);
  });

  it('answers OutOfRange for an offset past the end', async () => {
    const err = await failure(read({ digest, offset: data.length + 1 }));
    expect(err.code).toBe(status.OUT_OF_RANGE);
    expect(err.details).toContain('read past object length');
  });

  it('answers NotFound, naming the digest, for a blob that does not exist', async () => {
    const missing = digestOf('missing');
    const err = await failure(read({ digest: missing }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain(missing);
  });

  it('answers InvalidArgument for a malformed digest', async () => {
    const err = await failure(read({ digest: 'sha256:../../etc/passwd' }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });

  it('serves many small sequential reads, as containerd\'s content proxy makes them, byte for byte', async () => {
    const window = 32 * 1024;
    const parts: Buffer[] = [];
    for (let off = 0; off < 1024 * 1024; off += window) {
      const chunks = await read({ digest, offset: off, size: window });
      parts.push(...chunks.map((c) => c.data));
    }
    expect(Buffer.concat(parts).equals(data.subarray(0, 1024 * 1024))).toBe(true);
  });

  it('serves reads that jump back and forth correctly', async () => {
    for (const off of [2_000_000, 10, 2_000_100, 2_000_000, 3_000_000, 0]) {
      const chunks = await read({ digest, offset: off, size: 100 });
      expect(Buffer.concat(chunks.map((c) => c.data)).equals(data.subarray(off, off + 100))).toBe(true);
    }
  });

  it('answers NotFound for a blob deleted from the bucket behind the daemon\'s back', async () => {
    const gone = randomBlob(5000);
    const goneDigest = digestOf(gone);
    await writeBlob(client, 'deleted-outside', gone);
    expect(Buffer.concat((await read({ digest: goneDigest, size: 10 })).map((c) => c.data)).equals(gone.subarray(0, 10))).toBe(true);
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: `blobs/${goneDigest}` }));
    const err = await failure(read({ digest: goneDigest, offset: 100, size: 10 }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain(goneDigest);
  });

  it('does not remember that a blob was missing', async () => {
    const later = randomBlob(300);
    const laterDigest = digestOf(later);
    expect((await failure(read({ digest: laterDigest }))).code).toBe(status.NOT_FOUND);
    await writeBlob(client, 'arrives-later', later);
    expect(Buffer.concat((await read({ digest: laterDigest })).map((c) => c.data)).equals(later)).toBe(true);
  });

  it('serves the same bytes in another namespace (content is shared by digest)', async () => {
    const chunks = await read({ digest, offset: 0, size: 100 }, 'another');
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data.subarray(0, 100))).toBe(true);
  });
});
