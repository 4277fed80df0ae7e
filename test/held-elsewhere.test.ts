import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { HOLD_STANDS_MS } from '../src/content/holders.js';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { overriding } from './support/overriding.js';
import { call, getObject, newBucket, putObject, randomBlob, rawS3, startDaemon, until, WriteSession, type TestDaemon } from './support/harness.js';

/**
 * Two daemons on one bucket: a ref one daemon's Write stream holds is not continued, dropped or
 * aborted through the other, as a second stream on the same daemon would not be. The record of
 * the ingest names its holder while the stream lasts (renewed while the client sends nothing),
 * and no holder once the stream lets go. Crash resume, where the holder died, is in
 * test/restart.test.ts (a killed process on this machine is seen gone at once).
 */
const MiB = 1024 * 1024;
const PART = 5 * MiB;

let daemons: TestDaemon[] = [];
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});

async function twoDaemons(): Promise<[TestDaemon, TestDaemon, string]> {
  const bucket = await newBucket();
  const [a, b] = await Promise.all([0, 1].map(() => startDaemon({ bucket, flags: { partSize: '5MiB' } })));
  daemons.push(a!, b!);
  return [a!, b!, bucket];
}

interface StoredRecord {
  offset: number;
  upload?: { uploadId: string };
  heldBy?: { id: string; host: string; pid: number };
  heldAt?: string;
}

const recordKey = (ref: string) => `s3cs/v1/ns/test/ingests/${ref}`;

async function recordOf(bucket: string, ref: string): Promise<StoredRecord | undefined> {
  return getObject(bucket, recordKey(ref)).then(
    (b) => JSON.parse(b.toString()) as StoredRecord,
    () => undefined,
  );
}

async function sendRange(s: WriteSession, ref: string, data: Buffer, from: number, to: number): Promise<void> {
  for (let off = from; off < to; off += MiB) await s.send({ action: 'WRITE', ref, offset: off, data: data.subarray(off, Math.min(off + MiB, to)) });
}

/** `a`'s stream has written two parts of `data` and holds the ref on; answers it once the record shows the parts stored. */
async function holding(a: TestDaemon, bucket: string, ref: string, data: Buffer): Promise<{ stream: WriteSession; record: StoredRecord }> {
  const stream = new WriteSession(a.content());
  await stream.send({ action: 'STAT', ref, total: data.length });
  await sendRange(stream, ref, data, 0, 2 * PART);
  let record: StoredRecord | undefined;
  await until(async () => ((record = await recordOf(bucket, ref)), (record?.offset ?? 0) >= PART));
  return { stream, record: record! };
}

/**
 * `a`'s stream, opened with the digest (so the ingest goes on in place from its saved hash state),
 * stores two parts of `data` and lets go; answers the record once it says so (no holder).
 */
async function storedAndLetGo(a: TestDaemon, bucket: string, ref: string, data: Buffer): Promise<StoredRecord> {
  const first = new WriteSession(a.content());
  await first.send({ action: 'STAT', ref, total: data.length, expected: digestOf(data) });
  await sendRange(first, ref, data, 0, 2 * PART);
  let held!: StoredRecord;
  await until(async () => ((held = (await recordOf(bucket, ref))!), held?.offset === 2 * PART));
  first.cancel();
  await until(async () => (await recordOf(bucket, ref))?.heldBy === undefined);
  return held;
}

async function finish(stream: WriteSession, ref: string, data: Buffer, from: number): Promise<string> {
  await sendRange(stream, ref, data, from, data.length);
  const done = await stream.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digestOf(data) });
  stream.close();
  return done.digest;
}

async function refusal(p: Promise<unknown>): Promise<{ code?: number; details?: string }> {
  return p.then(
    () => ({}),
    (e: { code?: number; details?: string }) => e,
  );
}

async function uploadIds(bucket: string): Promise<string[]> {
  const out = await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => u.UploadId!);
}

describe('a ref held by a Write stream on another daemon', () => {
  it('is named in its record while the stream lasts, and the record names no holder once the stream lets go', async () => {
    const [a, , bucket] = await twoDaemons();
    const data = randomBlob(3 * PART);
    const { stream, record } = await holding(a, bucket, 'named', data);
    expect(record.heldBy?.pid).toBe(process.pid);
    expect(Date.now() - Date.parse(record.heldAt!)).toBeLessThan(HOLD_STANDS_MS);
    // both parts recorded: what moves the record on from here is the stream letting go
    await until(async () => (await recordOf(bucket, 'named'))?.offset === 2 * PART);
    stream.cancel();
    await until(async () => (await recordOf(bucket, 'named'))?.heldBy === undefined);
    expect((await recordOf(bucket, 'named'))?.offset).toBeGreaterThanOrEqual(PART);
  });

  it('is not taken up by an open on the other daemon: Unavailable, as locked, and the holder commits what its client sent', async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(3 * PART + MiB);
    const { stream } = await holding(a, bucket, 'contended', data);
    const onB = new WriteSession(b.content());
    const err = await refusal(onB.send({ action: 'STAT', ref: 'contended', total: data.length }));
    onB.close();
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('locked: a Write stream of another daemon');
    expect(await finish(stream, 'contended', data, 2 * PART)).toBe(digestOf(data));
    expect((await getObject(bucket, `blobs/${digestOf(data)}`)).equals(data)).toBe(true);
  });

  it('is not aborted through the other daemon: its upload stays, and the holder commits', async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(3 * PART);
    const { stream, record } = await holding(a, bucket, 'kept', data);
    const err = await refusal(call(b.content(), 'Abort', { ref: 'kept' }));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(await uploadIds(bucket)).toContain(record.upload!.uploadId);
    expect(await finish(stream, 'kept', data, 2 * PART)).toBe(digestOf(data));
  });

  it('is left alone by a small ingest of that ref on the other daemon: both commit', async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(3 * PART);
    const { stream, record } = await holding(a, bucket, 'shared-ref', data);
    const small = randomBlob(4096);
    const onB = new WriteSession(b.content());
    await onB.send({ action: 'STAT', ref: 'shared-ref', total: small.length });
    expect(await finish(onB, 'shared-ref', small, 0)).toBe(digestOf(small));
    expect((await recordOf(bucket, 'shared-ref'))?.upload?.uploadId).toBe(record.upload!.uploadId);
    expect(await finish(stream, 'shared-ref', data, 2 * PART)).toBe(digestOf(data));
  });

  it('is named in the record as the other daemon takes the ingest up, before its client sends a byte more', async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(3 * PART);
    const digest = digestOf(data);
    const held = await storedAndLetGo(a, bucket, 'taken', data);
    const onB = new WriteSession(b.content());
    expect(Number((await onB.send({ action: 'STAT', ref: 'taken', total: data.length, expected: digest })).offset)).toBe(2 * PART);
    // no part has landed since, and the renewal is 10 s off: the open wrote it
    const record = await recordOf(bucket, 'taken');
    expect(record?.heldBy?.id).toBeDefined();
    expect(record?.heldBy?.id).not.toBe(held.heldBy?.id);
    // a's client comes back to a, which let go of the ingest: told it is locked, and a keeps nothing of it
    const back = new WriteSession(a.content());
    const err = await refusal(back.send({ action: 'STAT', ref: 'taken', total: data.length, expected: digest }));
    back.close();
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(await finish(onB, 'taken', data, 2 * PART)).toBe(digest);
  });

  it("is not aborted through the daemon that let go of it before the other took it up: that daemon's copy is let go", async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(3 * PART);
    const digest = digestOf(data);
    await storedAndLetGo(a, bucket, 'abort-stale', data);
    const onB = new WriteSession(b.content());
    await onB.send({ action: 'STAT', ref: 'abort-stale', total: data.length, expected: digest });
    const held = await recordOf(bucket, 'abort-stale');
    const err = await refusal(call(a.content(), 'Abort', { ref: 'abort-stale' }));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(await uploadIds(bucket)).toContain(held!.upload!.uploadId);
    expect((await recordOf(bucket, 'abort-stale'))?.heldBy).toEqual(held!.heldBy);
    expect(await finish(onB, 'abort-stale', data, 2 * PART)).toBe(digest);
  });

  it("is continued from the other daemon's record, in place, by the daemon that kept a copy, once the other let go: the copy goes", async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(4 * PART);
    const digest = digestOf(data);
    await storedAndLetGo(a, bucket, 'in-place', data);
    // b takes it up, in the same upload, stores a part more, and lets go
    const onB = new WriteSession(b.content());
    expect(Number((await onB.send({ action: 'STAT', ref: 'in-place', total: data.length, expected: digest })).offset)).toBe(2 * PART);
    await sendRange(onB, 'in-place', data, 2 * PART, 3 * PART);
    await until(async () => (await recordOf(bucket, 'in-place'))?.offset === 3 * PART);
    onB.cancel();
    await until(async () => (await recordOf(bucket, 'in-place'))?.heldBy === undefined);
    // a's client comes back to a: it resumes where b's record stands, not where a's copy was
    const back = new WriteSession(a.content());
    expect(Number((await back.send({ action: 'STAT', ref: 'in-place', total: data.length, expected: digest })).offset)).toBe(3 * PART);
    expect(await finish(back, 'in-place', data, 3 * PART)).toBe(digest);
    expect(await recordOf(bucket, 'in-place')).toBeUndefined();
  });

  it('names no holder once its daemon stopped, though the stream was cut, so another daemon takes it up at once', async () => {
    const bucket = await newBucket();
    // the record writes of the daemon being stopped take a while, as on a distant S3
    let slow = false;
    const a = await startDaemon({
      bucket,
      flags: { partSize: '5MiB' },
      store: (config) => {
        const real = new S3BlobStore(config.s3!, createS3Client(config.s3!));
        return overriding(real, {
          putDoc: async (key: string, body: Buffer) => {
            if (slow && key.includes('/ingests/')) await new Promise((r) => setTimeout(r, 500));
            return real.putDoc(key, body);
          },
        });
      },
    });
    const b = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
    daemons.push(a, b);
    const data = randomBlob(3 * PART);
    await holding(a, bucket, 'stopped', data);
    await until(async () => (await recordOf(bucket, 'stopped'))?.offset === 2 * PART);
    slow = true;
    // the stream is still open: the stop waits briefly for it, then cuts it
    await a.daemon.stop(200);
    expect((await recordOf(bucket, 'stopped'))?.heldBy).toBeUndefined();
    const onB = new WriteSession(b.content());
    expect(Number((await onB.send({ action: 'STAT', ref: 'stopped', total: data.length })).offset)).toBeGreaterThan(0);
    onB.close();
  });

  it('is taken up once its hold is older than the holder renews it by far, and refused while it is recent', async () => {
    const [a, b, bucket] = await twoDaemons();
    const data = randomBlob(3 * PART);
    const { stream } = await holding(a, bucket, 'renewed', data);
    stream.cancel();
    let released!: StoredRecord;
    await until(async () => ((released = (await recordOf(bucket, 'renewed'))!), released?.heldBy === undefined));
    // a daemon on another host wrote it last, as its stream held it
    const elsewhere = (heldAt: number) =>
      putObject(bucket, recordKey('renewed'), Buffer.from(JSON.stringify({ ...released, heldBy: { id: 'gone', host: 'another-host', pid: 1 }, heldAt: new Date(heldAt).toISOString() })));
    await elsewhere(Date.now());
    const recent = new WriteSession(b.content());
    expect((await refusal(recent.send({ action: 'STAT', ref: 'renewed', total: data.length }))).code).toBe(status.UNAVAILABLE);
    recent.close();
    await elsewhere(Date.now() - HOLD_STANDS_MS - 1_000);
    const onB = new WriteSession(b.content());
    const st = await onB.send({ action: 'STAT', ref: 'renewed', total: data.length });
    expect(Number(st.offset)).toBe(released.offset);
    expect(await finish(onB, 'renewed', data, Number(st.offset))).toBe(digestOf(data));
  });
});
