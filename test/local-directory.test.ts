import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import { call, collect, failure, ns, randomBlob, startDaemon, tempDir, until, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';

const MiB = 1024 * 1024;
const UPLOAD_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

  /** Runs `work` with the store's directory `name` moved away, putting it back after. */
  const without = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const dir = join(root, name);
    const aside = join(root, `${name}-aside`);
    renameSync(dir, aside);
    try {
      return await work();
    } finally {
      renameSync(aside, dir);
    }
  };
  const statusOf = (ref: string) => call<object, { status: { offset: string | number } }>(client, 'Status', { ref });

  /** 3 MiB written to `ref` and its COMMIT failed (no blobs/ to rename into), the ingest left at its end. */
  async function commitFailedOnce(ref: string): Promise<{ data: Buffer; digest: string }> {
    const data = randomBlob(3 * MiB);
    const digest = digestOf(data);
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref, total: data.length, expected: digest });
    await first.send({ action: 'WRITE', ref, offset: 0, data });
    await without('blobs', async () => {
      await failure(first.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digest }));
    });
    return { data, digest };
  }

  it('stores the whole upload under its digest when a COMMIT is tried again after its rename failed', async () => {
    const ref = 'fs-commit-again';
    const { data, digest } = await commitFailedOnce(ref);
    expect(Number((await statusOf(ref)).status.offset)).toBe(data.length);
    const second = new WriteSession(client);
    await second.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digest });
    expect(readFileSync(join(root, 'blobs', digest)).equals(data)).toBe(true);
    const chunks = await collect<ReadContentResponse__Output>(client.Read({ digest }, ns()));
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
  });

  it('refuses a COMMIT tried again over an upload file cut short meanwhile, storing nothing under the digest', async () => {
    const ref = 'fs-commit-cut';
    const { data, digest } = await commitFailedOnce(ref);
    const files = readdirSync(join(root, 'uploads')).filter((name) => UPLOAD_NAME.test(name));
    expect(files).toHaveLength(1);
    truncateSync(join(root, 'uploads', files[0]!), MiB);
    const second = new WriteSession(client);
    const err = await failure(second.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digest }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/offset 0/);
    expect(existsSync(join(root, 'blobs', digest))).toBe(false);
    await call(client, 'Abort', { ref });
  });

  it('writes and commits an ingest once its upload directory is back, after a WRITE that could not create its file', async () => {
    const ref = 'fs-open-failed';
    const data = randomBlob(1000);
    await without('uploads', async () => {
      await failure(new WriteSession(client).send({ action: 'WRITE', ref, offset: 0, data }));
    });
    const again = new WriteSession(client);
    await again.send({ action: 'WRITE', ref, offset: 0, data });
    const done = await again.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digestOf(data) });
    expect(done.digest).toBe(digestOf(data));
    expect(readFileSync(join(root, 'blobs', digestOf(data))).equals(data)).toBe(true);
  });

  it('aborts an ingest whose upload file could not be created', async () => {
    const ref = 'fs-open-failed-abort';
    await without('uploads', async () => {
      await failure(new WriteSession(client).send({ action: 'WRITE', ref, offset: 0, data: randomBlob(1000) }));
    });
    await call(client, 'Abort', { ref });
    expect((await failure(statusOf(ref))).code).toBe(status.NOT_FOUND);
  });

  it('answers a WRITE whose upload directory is unusable with UNAVAILABLE, naming the operation and no path of the server', async () => {
    const err = await without('uploads', () => failure(new WriteSession(client).send({ action: 'WRITE', ref: 'fs-unusable', offset: 0, data: randomBlob(10) })));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toMatch(/upload/);
    expect(err.details).not.toContain(root);
    await call(client, 'Abort', { ref: 'fs-unusable' });
  });

  it('answers a ref within the daemon\'s bound but too long for a file name with INVALID_ARGUMENT, no path of the server', async () => {
    const ref = 'r'.repeat(300);
    const err = await failure(new WriteSession(client).send({ action: 'WRITE', ref, offset: 0, data: randomBlob(10) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('255 bytes');
    expect(err.details).not.toContain(root);
  });

  it('holds no descriptor of an upload file while its ingest waits for its client, and continues the ingest after', async () => {
    const ref = 'fs-put-aside';
    const data = randomBlob(3000);
    const uploads = join(root, 'uploads');
    // the upload files this process (the daemon runs in it) has open: not the documents and
    // records written aside there (doc-…, record-…), which other calls open for a moment
    const openUploads = () =>
      readdirSync('/proc/self/fd').flatMap((fd) => {
        try {
          const target = readlinkSync(join('/proc/self/fd', fd));
          const name = target.slice(uploads.length + 1);
          return target.startsWith(uploads + '/') && !/^(doc|record)-/.test(name) ? [target] : [];
        } catch {
          return [];
        }
      });
    const before = new Set(openUploads());
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref, total: data.length });
    await first.send({ action: 'WRITE', ref, offset: 0, data: data.subarray(0, 1000) });
    const mine = openUploads().filter((file) => !before.has(file));
    expect(mine).toHaveLength(1);
    first.close();
    await first.ended;
    await until(() => !openUploads().includes(mine[0]!), 5_000);
    const second = new WriteSession(client);
    expect(Number((await second.send({ action: 'STAT', ref, total: data.length })).offset)).toBe(1000);
    await second.send({ action: 'WRITE', ref, offset: 1000, data: data.subarray(1000) });
    await second.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digestOf(data) });
    second.close();
    expect(readFileSync(join(root, 'blobs', digestOf(data))).equals(data)).toBe(true);
  });

  it('leaves no ingest status behind after a COMMIT of the empty blob on a fresh ref', async () => {
    const ref = 'fs-empty';
    const digest = digestOf('');
    const done = await new WriteSession(client).send({ action: 'COMMIT', ref, total: 0, offset: 0, expected: digest });
    expect(done.digest).toBe(digest);
    expect((await failure(statusOf(ref))).code).toBe(status.NOT_FOUND);
  });
});

describe('local directory store, temporary files left by a crash', () => {
  it('removes at start the temporary documents and records older than the orphan grace, and keeps younger ones', async () => {
    const root = join(tempDir(), 'root');
    mkdirSync(join(root, 'uploads'), { recursive: true });
    const old = [`doc-${randomUUID()}`, `record-${randomUUID()}`];
    const young = `doc-${randomUUID()}`;
    const anHourAgo = new Date(Date.now() - 3600_000);
    for (const name of old) {
      writeFileSync(join(root, 'uploads', name), 'left by a crash');
      utimesSync(join(root, 'uploads', name), anHourAgo, anHourAgo);
    }
    writeFileSync(join(root, 'uploads', young), 'being written');
    const d = await startDaemon({ backend: 'fs', flags: { root } });
    try {
      await until(() => old.every((name) => !existsSync(join(root, 'uploads', name))));
      expect(statSync(join(root, 'uploads', young)).isFile()).toBe(true);
    } finally {
      await d.stop();
    }
  });
});
