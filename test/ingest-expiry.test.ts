import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import type { BlobStore, DocEntry } from '../src/blobstore/types.js';
import type { Config } from '../src/config.js';
import { docKeys } from '../src/metadata/documents.js';
import { openBlobStore } from '../src/server.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { overriding } from './support/overriding.js';
import {
  call,
  collect,
  failure,
  getObject,
  listKeys,
  newBucket,
  ns,
  putObject,
  quietLogger,
  randomBlob,
  rawS3,
  startDaemon,
  until,
  WriteSession,
} from './support/harness.js';

async function uploadsIn(bucket: string): Promise<string[]> {
  const out = await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

/** Leaves an ingest with one part already in the bucket, its stream gone. */
async function abandon(client: ReturnType<Awaited<ReturnType<typeof startDaemon>>['content']>, ref: string) {
  const data = randomBlob(6 * 1024 * 1024);
  const s = new WriteSession(client);
  await s.send({ action: 'STAT', ref, total: 12 * 1024 * 1024, expected: digestOf(randomBlob(8)) });
  await s.send({ action: 'WRITE', ref, offset: 0, data });
  s.close();
  await s.ended;
}

/**
 * The daemon's store, with the next look-up of one ref's record held once `hold` is called. A
 * look-up (IngestRecords.read: an open's, or the sweep's of an ingest this daemon holds) asks for
 * the record's key of the old form too, where the ref has a dot; a sweep reading the records a
 * listing shows never does. The record's own key is read at once, so the look-up answers the
 * record as it was then, once released; and with `hide`, listings leave the record out until `show`.
 */
function holdingLookUp(ref: string) {
  const legacy = docKeys.legacyIngest('test', ref);
  const key = docKeys.ingest('test', ref);
  let armed = false;
  let hidden = false;
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let reached = false;
  let real: BlobStore | undefined;
  return {
    store: async (config: Config) =>
      overriding((real = await openBlobStore(config, quietLogger())), {
        getDoc: async (docKey: string) => {
          if (docKey === legacy && armed) {
            armed = false;
            reached = true;
            await released;
          }
          return real!.getDoc(docKey);
        },
        async *listDocs(prefix: string, options?: { pageKeys?: number }): AsyncIterable<DocEntry> {
          for await (const entry of real!.listDocs(prefix, options)) if (!hidden || entry.key !== key) yield entry;
        },
      }),
    /** The record as stored now (not through the hold). */
    record: async () => {
      const doc = await real!.getDoc(key);
      return doc && (JSON.parse(doc.body.toString('utf8')) as { updatedAt: string; offset: number });
    },
    hold: () => (armed = true),
    reached: () => reached,
    release: () => release(),
    hide: () => (hidden = true),
    show: () => (hidden = false),
  };
}

/** Goes on with an ingest from where the open answered, as a client does, and commits it. */
async function writeOn(session: WriteSession, ref: string, blob: Buffer, offset: number): Promise<void> {
  const chunk = 1 << 20;
  for (let at = offset; at < blob.length; at += chunk) await session.send({ action: 'WRITE', ref, offset: at, data: blob.subarray(at, at + chunk) });
  await session.send({ action: 'COMMIT', ref, total: blob.length, offset: blob.length, expected: digestOf(blob), labels: {} });
  session.close();
  await session.ended;
}

async function readBack(client: ReturnType<Awaited<ReturnType<typeof startDaemon>>['content']>, digest: string): Promise<Buffer> {
  const chunks = await collect<ReadContentResponse__Output>(client.Read({ digest }, ns()));
  return Buffer.concat(chunks.map((c) => c.data));
}

async function eventually(probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100 && !(await probe()); i++) await new Promise((r) => setTimeout(r, 100));
}

describe('abandoned ingests', () => {
  it('expire after --ingest-expiry: the ingest is gone and its multipart upload aborted', async () => {
    const d = await startDaemon({ flags: { partSize: '5MiB', ingestExpiry: '2s' } });
    try {
      await abandon(d.content(), 'left-behind');
      await eventually(async () => (await listKeys(d.bucket!, 's3cs/v1/ns/test/ingests/')).length > 0);
      expect(await uploadsIn(d.bucket!)).toHaveLength(1);
      expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/ingests/')).toEqual(['s3cs/v1/ns/test/ingests/left-behind']);
      let code = status.OK;
      for (let i = 0; i < 100 && code !== status.NOT_FOUND; i++) {
        await new Promise((r) => setTimeout(r, 200));
        code = await call(d.content(), 'Status', { ref: 'left-behind' }).then(() => status.OK, (e: { code: number }) => e.code);
      }
      expect(code).toBe(status.NOT_FOUND);
      expect(await uploadsIn(d.bucket!)).toEqual([]);
      expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/ingests/')).toEqual([]);
    } finally {
      await d.stop();
    }
  });

  it('aborted with Abort: the record and the multipart upload are gone at once', async () => {
    const d = await startDaemon({ flags: { partSize: '5MiB' } });
    try {
      await abandon(d.content(), 'abort-me');
      await eventually(async () => (await listKeys(d.bucket!, 's3cs/v1/ns/test/ingests/')).length > 0);
      await call(d.content(), 'Abort', { ref: 'abort-me' });
      expect(await uploadsIn(d.bucket!)).toEqual([]);
      expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/ingests/')).toEqual([]);
      expect((await failure(call(d.content(), 'Status', { ref: 'abort-me' }))).code).toBe(status.NOT_FOUND);
    } finally {
      await d.stop();
    }
  });

  it('are dropped by what their record says now, not by what a lagging listing shows was read before', async () => {
    const key = 's3cs/v1/ns/test/ingests/continued-elsewhere';
    let shown: string | undefined;
    const readAt: number[] = [];
    // a listing that lags behind the bucket, as Swift's container listings may: it goes on showing
    // the version of the record it showed first
    const d = await startDaemon({
      flags: { partSize: '5MiB', ingestExpiry: '2s' },
      store: (config) => {
        const real = new S3BlobStore(config.s3!, createS3Client(config.s3!));
        return overriding(real, {
          async *listDocs(prefix: string): AsyncIterable<DocEntry> {
            for await (const entry of real.listDocs(prefix)) {
              if (`s3cs/${entry.key}` !== key) yield entry;
              else yield { key: entry.key, version: (shown ??= entry.version) };
            }
          },
          getDoc: (docKey: string) => (`s3cs/${docKey}` === key && readAt.push(Date.now()), real.getDoc(docKey)),
        });
      },
    });
    const record = (at: string) => Buffer.from(JSON.stringify({ ref: 'continued-elsewhere', total: 12 * 1024 * 1024, expected: '', startedAt: at, updatedAt: at, offset: 0 }));
    try {
      const first = Date.now();
      await putObject(d.bucket!, key, record(new Date(first).toISOString()));
      // the daemon lists it (and keeps what it read), then another daemon goes on with the ingest,
      // moving its record on, past the time the first version expires
      await call(d.content(), 'ListStatuses', { filters: [] });
      expect(shown).toBeDefined();
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 500));
        await putObject(d.bucket!, key, record(new Date().toISOString()));
      }
      // a sweep looked at it once its first version had expired
      expect(readAt.some((at) => at > first + 2_000)).toBe(true);
      expect(JSON.parse((await getObject(d.bucket!, key)).toString())).toMatchObject({ ref: 'continued-elsewhere' });
      expect(d.logs.filter((l) => l.ref === 'continued-elsewhere' && String(l.msg).startsWith('discarded'))).toEqual([]);
    } finally {
      await d.stop();
    }
  });

  it('left by a daemon that went away are swept by the next one at start', async () => {
    const bucket = await newBucket();
    const first = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
    await abandon(first.content(), 'orphaned');
    await eventually(async () => (await listKeys(bucket, 's3cs/v1/ns/test/ingests/')).length > 0);
    await first.stop();
    expect(await uploadsIn(bucket)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1_500));
    const second = await startDaemon({ bucket, flags: { partSize: '5MiB', ingestExpiry: '1s' } });
    try {
      // the sweep aborts the upload before it removes the record that names it
      await eventually(async () => (await uploadsIn(bucket)).length === 0 && (await listKeys(bucket, 's3cs/v1/ns/test/ingests/')).length === 0);
      expect(await uploadsIn(bucket)).toEqual([]);
      expect(await listKeys(bucket, 's3cs/v1/ns/test/ingests/')).toEqual([]);
      expect((await failure(call(second.content(), 'Status', { ref: 'orphaned' }))).code).toBe(status.NOT_FOUND);
    } finally {
      await second.stop();
    }
  });

  it.each(['s3', 'fs'] as const)('opened again while the sweep expires them are not lost: the open is refused as locked until the sweep is done (%s)', async (backend) => {
    const ref = 'expiring.reopened';
    const blob = randomBlob(12 * 1024 * 1024);
    const held = holdingLookUp(ref);
    const d = await startDaemon({ backend, flags: { partSize: '5MiB', ingestExpiry: '2s' }, store: held.store });
    try {
      const client = d.content();
      const first = new WriteSession(client);
      await first.send({ action: 'STAT', ref, total: blob.length, expected: digestOf(blob) });
      // from here the daemon looks the record up only when its sweep expires the ingest
      held.hold();
      // past a checkpoint of either store (a directory's comes every 8 MiB), so the ingest can be continued from its record
      await first.send({ action: 'WRITE', ref, offset: 0, data: blob.subarray(0, 9 * 1024 * 1024) });
      first.close();
      await first.ended;
      await until(() => held.reached());
      // the client comes back while the sweep reads the record
      const second = new WriteSession(client);
      const opened = await second.send({ action: 'STAT', ref, total: blob.length, expected: digestOf(blob) }).catch((err: ServiceError) => err);
      held.release();
      await until(() => d.logs.some((l) => l.ref === ref && l.msg === 'discarded expired ingest'));
      // refused as locked, the client opens the ref again (as containerd's clients retry)
      const retried = 'code' in opened ? new WriteSession(client) : second;
      const at = 'code' in opened ? await retried.send({ action: 'STAT', ref, total: blob.length, expected: digestOf(blob) }) : opened;
      await writeOn(retried, ref, blob, Number(at.offset));
      expect((await readBack(client, digestOf(blob))).equals(blob)).toBe(true);
      expect(opened).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringContaining('locked') });
    } finally {
      await d.stop();
    }
  });

  it('recorded are not dropped while an open takes them up', async () => {
    const ref = 'recorded.reopened';
    const blob = randomBlob(12 * 1024 * 1024);
    const bucket = await newBucket();
    const first = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
    const s = new WriteSession(first.content());
    await s.send({ action: 'STAT', ref, total: blob.length, expected: digestOf(blob) });
    await s.send({ action: 'WRITE', ref, offset: 0, data: blob.subarray(0, 6 * 1024 * 1024) });
    s.close();
    await s.ended;
    // the record names the part stored, from where the ingest can be continued
    const key = `s3cs/${docKeys.ingest('test', ref)}`;
    await until(async () => (await listKeys(bucket, key)).length > 0 && JSON.parse((await getObject(bucket, key)).toString()).offset > 0);
    await first.stop();
    const held = holdingLookUp(ref);
    // the next daemon's sweeps see the record only once an open of it is under way
    held.hide();
    const d = await startDaemon({ bucket, flags: { partSize: '5MiB', ingestExpiry: '2s' }, store: held.store });
    try {
      const record = await held.record();
      expect(record?.offset).toBe(5 * 1024 * 1024);
      await until(() => Date.now() > new Date(record!.updatedAt).getTime() + 2_500);
      held.hold();
      const client = d.content();
      const session = new WriteSession(client);
      const opened = session.send({ action: 'STAT', ref, total: blob.length, expected: digestOf(blob) });
      await until(() => held.reached());
      held.show();
      // a sweep has found the record expired: kept while the open takes the ingest up, or dropped
      await until(() => d.logs.some((l) => l.ref === ref && typeof l.msg === 'string' && /expired ingest record/.test(l.msg)));
      held.release();
      await writeOn(session, ref, blob, Number((await opened).offset));
      expect((await readBack(client, digestOf(blob))).equals(blob)).toBe(true);
    } finally {
      await d.stop();
    }
  });
});
