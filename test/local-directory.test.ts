import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import { call, collect, failure, ns, randomBlob, startDaemon, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';

/** The embedded default behaves as the S3 store does; these pin the directory specifics. */
describe('local directory store (no bucket)', () => {
  let d: TestDaemon;
  let client: ContentClient;
  let root: string;

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs' });
    client = d.content();
    root = join(d.socket, '..', 'root');
  });
  afterAll(async () => d.stop());

  it('stores a committed blob at blobs/<digest> in the directory, byte for byte', async () => {
    const data = randomBlob(2 * 1024 * 1024 + 3);
    const digest = digestOf(data);
    await writeBlob(client, 'fs-1', data, { expected: digest });
    expect(readFileSync(join(root, 'blobs', digest)).equals(data)).toBe(true);
    const chunks = await collect<ReadContentResponse__Output>(client.Read({ digest }, ns()));
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
  });

  it('leaves no file behind for a commit that fails verification', async () => {
    const session = new WriteSession(client);
    await session.send({ action: 'WRITE', ref: 'fs-bad', offset: 0, data: randomBlob(100) });
    const err = await failure(session.send({ action: 'COMMIT', ref: 'fs-bad', total: 100, offset: 100, expected: digestOf('other') }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    await call(client, 'Abort', { ref: 'fs-bad' });
    expect(readdirSync(join(root, 'blobs'))).not.toContain(digestOf('other'));
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it.each(['.', 'layer.tmp', 'a/./b'])('records an ingest with ref %j where another daemon on the directory finds and aborts it', async (ref) => {
    const first = new WriteSession(client);
    await first.send({ action: 'WRITE', ref, offset: 0, data: randomBlob(1000) });
    first.close();
    await first.ended;
    const other = await startDaemon({ backend: 'fs', flags: { root } });
    try {
      const statuses = (await call<object, { statuses: { ref: string }[] }>(other.content(), 'ListStatuses', { filters: [] })).statuses;
      expect(statuses.map((s) => s.ref)).toContain(ref);
      await call(other.content(), 'Abort', { ref });
      const after = (await call<object, { statuses: { ref: string }[] }>(other.content(), 'ListStatuses', { filters: [] })).statuses;
      expect(after.map((s) => s.ref)).not.toContain(ref);
    } finally {
      await other.stop();
    }
  });

  it('lists a lease whose id ends like a temporary file', async () => {
    await call(d.leases(), 'Create', { id: 'build.tmp' });
    const listed = await call<object, { leases: { id: string }[] }>(d.leases(), 'List', { filters: [] });
    expect(listed.leases.map((l) => l.id)).toContain('build.tmp');
  });

  it('lists, labels and deletes like the S3 store', async () => {
    const { digest } = await writeBlob(client, 'fs-2', randomBlob(10), { labels: { a: 'b' } });
    const listed = await collect<ListContentResponse__Output>(client.List({ filters: ['labels.a==b'] }, ns()));
    expect(listed.flatMap((r) => r.info.map((i) => i.digest))).toContain(digest);
    await call(client, 'Delete', { digest });
    const after = await collect<ListContentResponse__Output>(client.List({ filters: [] }, ns()));
    expect(after.flatMap((r) => r.info.map((i) => i.digest))).not.toContain(digest);
    expect((await failure(call(client, 'Info', { digest }))).code).toBe(status.NOT_FOUND);
    // the bytes stay until the collector finds nothing needs them
    expect(readdirSync(join(root, 'blobs'))).toContain(digest);
  });
});
