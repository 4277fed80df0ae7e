import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import type { DocEntry } from '../src/blobstore/types.js';
import { overriding } from './support/overriding.js';
import { call, failure, getObject, listKeys, newBucket, putObject, randomBlob, rawS3, startDaemon, WriteSession } from './support/harness.js';

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
});
