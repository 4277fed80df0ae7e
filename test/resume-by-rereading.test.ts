import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { createSHA256 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ListStatusesResponse__Output } from '../src/generated/containerd/services/content/v1/ListStatusesResponse.js';
import { childrenOfEachTest, CLI, contentClient, serve, type ServingChild } from './support/child.js';
import { daemonLoggingRequests, RequestLog } from './support/s3-requests.js';
import {
  call,
  collect,
  failure,
  getObject,
  listKeys,
  newBucket,
  ns,
  putObject,
  randomBlob,
  rawS3,
  s3,
  startDaemon,
  tempDir,
  until,
  uploadsOlderThan,
  useS3Credentials,
  WriteSession,
} from './support/harness.js';

/**
 * Ingests whose bytes go to the staging area (no digest given up front, as containerd's own
 * backend writes) are hashed with Node's own SHA-256, which cannot be saved: after a crash the
 * daemon that continues one completes the stored upload where it is (no blob key), reads it back
 * through a new hash, and continues in a new upload made of copies of its parts. Each daemon runs
 * in its own process so it can be killed.
 */
const MiB = 1024 * 1024;
const PART = 5 * MiB;

const { children, clients } = childrenOfEachTest();

interface Running extends ServingChild {
  content: ContentClient;
}

/** What a daemon killed while continuing an ingest leaves: the old upload completed where it is. */
async function completeInPlace(bucket: string, record: { upload?: { key: string; uploadId: string; etags: string[] } }): Promise<void> {
  const { key, uploadId, etags } = record.upload!;
  await rawS3().send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) },
    }),
  );
}

async function start(bucket: string): Promise<Running> {
  useS3Credentials();
  const socket = join(tempDir('s3cs-reread-'), 'content.sock');
  const args = ['--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region];
  const running = await serve([...args, '--part-size', '5MiB', '--log-level', 'debug'], children);
  const content = contentClient(`unix://${socket}`);
  clients.push(content);
  return { ...running, content };
}

async function kill(d: Running): Promise<void> {
  d.child.kill('SIGKILL');
  await d.exited;
}

interface Record {
  offset: number;
  upload?: { key: string; uploadId: string; etags: string[] };
  hash?: unknown;
  rehash?: { algorithm: string };
}

const recordKey = (ref: string) => `s3cs/v1/ns/test/ingests/${ref}`;

/** The ingest record, once it says at least `offset` bytes are stored. */
async function storedUpTo(bucket: string, ref: string, offset: number): Promise<Record> {
  for (let i = 0; i < 200; i++) {
    const record = await getObject(bucket, recordKey(ref)).then(
      (b) => JSON.parse(b.toString()) as Record,
      () => undefined,
    );
    if (record && record.offset >= offset) return record;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the record of ${ref} never reached offset ${offset}`);
}

async function sendRange(s: WriteSession, ref: string, data: Buffer, from: number, to: number): Promise<void> {
  for (let off = from; off < to; off += MiB) await s.send({ action: 'WRITE', ref, offset: off, data: data.subarray(off, Math.min(off + MiB, to)) });
}

/** Opens without a digest, writes from the offset the daemon reports, commits with the digest; answers that offset. */
async function resume(client: ContentClient, ref: string, data: Buffer): Promise<number> {
  const s = new WriteSession(client);
  const st = await s.send({ action: 'STAT', ref, total: data.length });
  await sendRange(s, ref, data, st.offset, data.length);
  const done = await s.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digestOf(data) });
  s.close();
  await s.ended;
  expect(done.digest).toBe(digestOf(data));
  return st.offset;
}

async function readAll(client: ContentClient, digest: string): Promise<Buffer> {
  const chunks = await collect<{ data: Buffer }>(client.Read({ digest }, ns()));
  return Buffer.concat(chunks.map((c) => c.data));
}

async function uploadsIn(bucket: string): Promise<string[]> {
  const out = await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

/** A first daemon takes `upTo` bytes of `data` without a digest, records `stored` of them, and is killed. */
async function killedMidIngest(bucket: string, ref: string, data: Buffer, upTo: number, stored: number): Promise<Record> {
  const first = await start(bucket);
  const s = new WriteSession(first.content);
  await s.send({ action: 'STAT', ref, total: data.length });
  await sendRange(s, ref, data, 0, upTo);
  const record = await storedUpTo(bucket, ref, stored);
  await kill(first);
  return record;
}

/**
 * `a` ingests two parts of `data` and lets go of the stream; `b` then continues the ingest from
 * the bucket, which completes a's staging upload to read it back, so the upload a still holds is
 * gone. Answers the record as a left it.
 */
async function takenUpByAnother(
  bucket: string,
  a: { content(): ContentClient },
  b: { content(): ContentClient },
  ref: string,
  data: Buffer,
): Promise<Record> {
  const first = new WriteSession(a.content());
  await first.send({ action: 'STAT', ref, total: data.length });
  await sendRange(first, ref, data, 0, 2 * PART);
  const record = await storedUpTo(bucket, ref, 2 * PART);
  first.cancel();
  // until a's stream has let go and its record says so, b is told the ref is locked, and
  // tries again as containerd's clients do
  let offset: number | undefined;
  await until(async () => {
    const onB = new WriteSession(b.content());
    try {
      offset = Number((await onB.send({ action: 'STAT', ref, total: data.length })).offset);
      return true;
    } catch (err) {
      expect((err as { code?: number }).code).toBe(status.UNAVAILABLE);
      return false;
    } finally {
      onB.cancel();
    }
  });
  expect(offset).toBe(2 * PART);
  // b's stream let go: once its record says so, a's client may come back (before, a would be told
  // the ref is b's, and let go of its own copy)
  await until(async () => getObject(bucket, recordKey(ref)).then((b) => (JSON.parse(b.toString()) as { heldBy?: unknown }).heldBy === undefined, () => false));
  return record;
}

/**
 * `a` ingests two parts of `data` and lets go of the stream; the staging upload it holds is then
 * completed where it is and the object removed, as a daemon continuing the ingest by reading it
 * back does, so the upload a keeps is gone though the record is still a's (the other daemon's
 * take-up record lost, say). Answers the record as a left it.
 */
async function goneUnder(bucket: string, a: { content(): ContentClient }, ref: string, data: Buffer): Promise<Record> {
  const first = new WriteSession(a.content());
  await first.send({ action: 'STAT', ref, total: data.length });
  await sendRange(first, ref, data, 0, 2 * PART);
  await storedUpTo(bucket, ref, 2 * PART);
  first.cancel();
  let record!: Record & { heldBy?: unknown };
  await until(async () => ((record = await storedUpTo(bucket, ref, 2 * PART)), record.heldBy === undefined));
  await completeInPlace(bucket, record);
  // and removes the object that made, once its own record names the upload it continues in
  await rawS3().send(new DeleteObjectCommand({ Bucket: bucket, Key: record.upload!.key }));
  return record;
}

/**
 * The client of the daemon whose ingest another took up comes back: it continues from where its
 * daemon says, to the end and COMMIT, until told to start over. Swift may close before it has
 * read a refused part, which reads as S3 not answering (Unavailable, parts kept): the client
 * tries again, as containerd's would, until told.
 */
async function toldToStartOver(a: { content(): ContentClient }, ref: string, data: Buffer): Promise<{ code?: number; details?: string }> {
  let err: { code?: number; details?: string } = {};
  for (let attempt = 0; attempt < 4 && err.code !== status.FAILED_PRECONDITION; attempt++) {
    const again = new WriteSession(a.content());
    const { offset } = await again.send({ action: 'STAT', ref, total: data.length });
    err = await failure(
      (async () => {
        await sendRange(again, ref, data, Number(offset), data.length);
        return again.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digestOf(data) });
      })(),
    );
    again.cancel();
  }
  return err;
}

/** Two daemons sharing `bucket`, with parts small enough for a test to store several. */
const twoDaemonsOn = (bucket: string) => Promise.all([startDaemon({ bucket, flags: { partSize: '5MiB' } }), startDaemon({ bucket, flags: { partSize: '5MiB' } })]);

const continuedByRereading = (d: Running, offset: number) =>
  d.lines.some((l) => l.msg === 'continuing an ingest from its checkpoint' && l.offset === offset && l.by === 'stored bytes read back');

describe('an ingest stored in the staging area, continued after a crash by reading its bytes back', () => {
  it('records its checkpoints without a hash state, and a second daemon continues it from the last stored part to a verified commit, leaving nothing behind', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART + 3 * MiB);
    const record = await killedMidIngest(bucket, 'killed', data, 3 * PART + 2 * MiB, 3 * PART);
    expect(record.rehash).toEqual({ algorithm: 'sha256' });
    expect(record.hash).toBeUndefined();
    expect(record.upload!.key.startsWith('s3cs/staging/')).toBe(true);

    const second = await start(bucket);
    const st = await call<object, { status: { offset: number } }>(second.content, 'Status', { ref: 'killed' });
    expect(st.status.offset).toBe(3 * PART);
    expect(await resume(second.content, 'killed', data)).toBe(3 * PART);
    expect(continuedByRereading(second, 3 * PART)).toBe(true);
    expect((await readAll(second.content, digestOf(data))).equals(data)).toBe(true);
    // the completed old upload, its copy and the ingest's record are all gone
    expect(await uploadsIn(bucket)).toEqual([]);
    expect(await listKeys(bucket, 's3cs/staging/')).toEqual([]);
    expect(await listKeys(bucket, 's3cs/v1/ns/test/ingests/')).toEqual([]);
  });

  it('reads the bytes back for one open at a time: a second open of the ref meanwhile is told it is locked', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART + 3 * MiB);
    await killedMidIngest(bucket, 'opened-twice', data, 3 * PART + 2 * MiB, 3 * PART);
    const second = await start(bucket);
    const sessions = [new WriteSession(second.content), new WriteSession(second.content)];
    const opened = await Promise.allSettled(sessions.map((w) => w.send({ action: 'STAT', ref: 'opened-twice', total: data.length })));
    for (const w of sessions) w.close();
    const took = opened.filter((o) => o.status === 'fulfilled');
    const refused = opened.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(took.map((o) => Number(o.value.offset))).toEqual([3 * PART]);
    expect(refused.map((o) => (o.reason as { code: number }).code)).toEqual([status.UNAVAILABLE]);
    expect(second.lines.filter((l) => l.msg === 'continuing an ingest from its checkpoint')).toHaveLength(1);
  });

  it('continues the digest over the bytes read back: a different tail fails the commit, and no blob appears', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + MiB);
    await killedMidIngest(bucket, 'tampered', data, 2 * PART, 2 * PART);
    const other = Buffer.concat([data.subarray(0, 2 * PART), randomBlob(MiB)]);

    const second = await start(bucket);
    const s = new WriteSession(second.content);
    expect((await s.send({ action: 'STAT', ref: 'tampered', total: data.length })).offset).toBe(2 * PART);
    await sendRange(s, 'tampered', other, 2 * PART, other.length);
    const err = await s.send({ action: 'COMMIT', ref: 'tampered', total: data.length, offset: data.length, expected: digestOf(data) }).then(
      () => undefined,
      (e: { code: number; details: string }) => e,
    );
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    expect(err?.details).toContain(`unexpected commit digest ${digestOf(other)}, expected ${digestOf(data)}`);
    expect(await listKeys(bucket, 'blobs/')).toEqual([]);
  });

  it('is continued by the next daemon when the one continuing it died after completing the old upload', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + 2 * MiB);
    const record = await killedMidIngest(bucket, 'twice', data, 2 * PART + MiB, 2 * PART);
    await completeInPlace(bucket, record);

    const third = await start(bucket);
    expect(await resume(third.content, 'twice', data)).toBe(2 * PART);
    expect(continuedByRereading(third, 2 * PART)).toBe(true);
    expect((await getObject(bucket, `blobs/${digestOf(data)}`)).equals(data)).toBe(true);
    expect(await listKeys(bucket, 's3cs/staging/')).toEqual([]);
  });

  it('reads the completed upload back all the same where the store, once an upload is completed, no longer knows it', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + 2 * MiB);
    const record = await killedMidIngest(bucket, 'forgotten', data, 2 * PART + MiB, 2 * PART);
    await completeInPlace(bucket, record);
    // Swift and AWS answer a repeated completion with success for a while; an upload id the store
    // does not know stands for one it has forgotten (NoSuchUpload)
    const forgotten = { ...record, upload: { ...record.upload!, uploadId: randomUUID() } };
    await putObject(bucket, recordKey('forgotten'), Buffer.from(JSON.stringify(forgotten)));

    const next = await start(bucket);
    expect(await resume(next.content, 'forgotten', data)).toBe(2 * PART);
    expect(continuedByRereading(next, 2 * PART)).toBe(true);
    expect(await listKeys(bucket, 's3cs/staging/')).toEqual([]);
  });

  it('what a continuation cut short leaves is removed: the sweep drops the expired record and aborts the unowned copy, the collector the completed object', async () => {
    const bucket = await newBucket();
    const s3c = rawS3();
    // A record whose staging upload a daemon completed to read it back, and whose copy it began
    // before it died; the upload began on a day long past.
    const key = `s3cs/staging/2020-01-01/${randomUUID()}`;
    const { UploadId } = await s3c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const part = randomBlob(PART);
    const { ETag } = await s3c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: part }));
    await s3c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } }));
    const old = '2020-01-01T00:00:00.000Z';
    const record = {
      ref: 'cut-short',
      total: 2 * PART,
      expected: '',
      startedAt: old,
      updatedAt: old,
      offset: PART,
      upload: { key, uploadId: UploadId!, partSize: String(PART), etags: [ETag!] },
      rehash: { algorithm: 'sha256' },
    };
    await putObject(bucket, recordKey('cut-short'), Buffer.from(JSON.stringify(record)));
    const copyKey = `s3cs/staging/${new Date().toISOString().slice(0, 10)}/${randomUUID()}`;
    const copy = await s3c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: copyKey }));
    await s3c.send(new UploadPartCommand({ Bucket: bucket, Key: copyKey, UploadId: copy.UploadId, PartNumber: 1, Body: part }));
    // the daemon sweeps once at start: the copy must be past the grace by then
    await uploadsOlderThan(bucket, 1_000);

    useS3Credentials();
    const socket = join(tempDir('s3cs-reread-'), 'content.sock');
    await serve(['--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region, '--orphan-upload-grace', '1s'], children);
    // the start-up sweep runs beside serving
    await until(async () => (await uploadsIn(bucket)).length === 0 && (await listKeys(bucket, recordKey('cut-short'))).length === 0, 60_000);
    expect(await uploadsIn(bucket)).toEqual([]);
    expect(await listKeys(bucket, 's3cs/v1/ns/test/ingests/')).toEqual([]);
    expect(await listKeys(bucket, 's3cs/staging/')).toEqual([key]);

    const gc = spawnSync(process.execPath, [CLI, 'gc', '--delete', '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region, '--log-level', 'error'], {
      encoding: 'utf8',
      env: { ...process.env, AWS_ACCESS_KEY_ID: s3().accessKey, AWS_SECRET_ACCESS_KEY: s3().secretKey },
    });
    expect(gc.status, gc.stderr).toBe(0);
    expect(await listKeys(bucket, 's3cs/staging/')).toEqual([]);
  });

  it('the new upload a continuation fills is not listed among uploads nobody owns while its checkpoint is read back, however long that takes', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + MiB);
    const record = await killedMidIngest(bucket, 'slow-reread', data, 2 * PART + MiB, 2 * PART);
    useS3Credentials();
    const config = resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB' }, {});
    const client = createS3Client(config.s3!);
    const log = new RequestLog(client);
    const store = new S3BlobStore(config.s3!, client);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    log.intercept = async (op, key) => {
      if (op === 'GetObject' && key === record.upload!.key) await held;
    };
    const listed = async () => {
      const ids: string[] = [];
      for await (const u of store.listUploads()) ids.push(u.handle.uploadId as string);
      return ids;
    };
    try {
      let read = 0;
      const reopening = store.reopenCheckpoint({ offset: record.offset, handle: record.upload! }, (chunk) => void (read += chunk.length));
      // the old upload completed where it is, the copy begun
      let copyId: string | undefined;
      await until(async () => {
        const out = await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        copyId = out.Uploads?.find((u) => u.Key !== record.upload!.key)?.UploadId;
        return copyId !== undefined;
      });
      expect(await listed()).not.toContain(copyId);
      release();
      const reopened = await reopening;
      expect(read).toBe(2 * PART);
      expect(reopened.checkpoint.handle.uploadId).toBe(copyId);
      // filled and handed over: from here the ingest that takes it owns it
      expect(await listed()).toContain(copyId);
      await store.discardUpload(reopened.checkpoint.handle);
    } finally {
      release();
      await store.close();
    }
  });

  it('two daemons continuing the same ref at once: one commits the right bytes, the other commits them too, finds them stored, or is told to start over', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART + MiB);
    await killedMidIngest(bucket, 'contended', data, 3 * PART, 3 * PART);

    const [a, b] = await Promise.all([start(bucket), start(bucket)]);
    const outcomes = await Promise.all(
      [a, b].map((d) =>
        resume(d.content, 'contended', data).then(
          () => 'committed',
          (e: { code?: number; details?: string }) => {
            if (e.code === status.ALREADY_EXISTS) return 'found stored';
            expect(e.code).toBe(status.FAILED_PRECONDITION);
            expect(e.details).toContain('write the content again from offset 0');
            return 'told to start over';
          },
        ),
      ),
    );
    expect(outcomes).toContain('committed');
    expect((await getObject(bucket, `blobs/${digestOf(data)}`)).equals(data)).toBe(true);
    console.log(`two daemons continuing one ingest: ${outcomes.join(', ')}`);
  });

  it('continues a record the previous version wrote, with its saved hash state, from that state', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + MiB);
    // The previous version's record: a staging upload of two parts, and the saveable hash's state after them.
    const key = `s3cs/staging/${new Date().toISOString().slice(0, 10)}/${randomUUID()}`;
    const s3c = rawS3();
    const { UploadId } = await s3c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const etags: string[] = [];
    for (let n = 0; n < 2; n++) {
      const body = data.subarray(n * PART, (n + 1) * PART);
      etags.push((await s3c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n + 1, Body: body }))).ETag!);
    }
    const hash = await createSHA256();
    hash.init();
    hash.update(data.subarray(0, 2 * PART));
    const at = new Date().toISOString();
    const old = {
      ref: 'old-format',
      total: data.length,
      expected: '',
      startedAt: at,
      updatedAt: at,
      offset: 2 * PART,
      upload: { key, uploadId: UploadId!, partSize: String(PART), etags },
      hash: { algorithm: 'sha256', state: Buffer.from(hash.save()).toString('base64') },
    };
    await putObject(bucket, recordKey('old-format'), Buffer.from(JSON.stringify(old)));

    const d = await start(bucket);
    expect(await resume(d.content, 'old-format', data)).toBe(2 * PART);
    expect(d.lines.some((l) => l.msg === 'continuing an ingest from its checkpoint' && l.by === 'saved hash state')).toBe(true);
    expect((await readAll(d.content, digestOf(data))).equals(data)).toBe(true);
    expect(await uploadsIn(bucket)).toEqual([]);
  });

  it('keeps the bytes it was continued from while the record naming the new upload could not be written, and still commits', async () => {
    const bucket = await newBucket();
    const s3c = rawS3();
    const data = randomBlob(PART + MiB);
    // what a killed daemon leaves: a record saying `rehash` over a staging upload of one part
    const key = `s3cs/staging/${new Date().toISOString().slice(0, 10)}/${randomUUID()}`;
    const { UploadId } = await s3c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const { ETag } = await s3c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: data.subarray(0, PART) }));
    const at = new Date().toISOString();
    const record = { ref: 'unrecorded', total: data.length, expected: '', startedAt: at, updatedAt: at, offset: PART };
    const upload = { key, uploadId: UploadId!, partSize: String(PART), etags: [ETag!] };
    await putObject(bucket, recordKey('unrecorded'), Buffer.from(JSON.stringify({ ...record, upload, rehash: { algorithm: 'sha256' } })));

    const { d, log } = await daemonLoggingRequests({ bucket });
    try {
      let refused = 0;
      log.intercept = (op, k) => {
        if (op === 'PutObject' && k === recordKey('unrecorded') && refused++ === 0) throw new Error('refused for the test');
      };
      expect(await resume(d.content(), 'unrecorded', data)).toBe(PART);
      expect(refused).toBeGreaterThan(0);
      expect((await getObject(bucket, `blobs/${digestOf(data)}`)).equals(data)).toBe(true);
      // the record kept naming the old upload's bytes all along, so they stayed
      expect(await listKeys(bucket, key)).toEqual([key]);
    } finally {
      await d.stop();
    }
  });
});

describe('an ingest whose upload another daemon completed meanwhile', () => {
  it('starts over where it was left: the write that finds its upload gone fails naming offset 0, and Status says 0', async () => {
    const bucket = await newBucket();
    const a = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
    try {
      const data = randomBlob(3 * PART + MiB);
      await goneUnder(bucket, a, 'taken', data);
      // a still holds the ingest, at the offset it had
      const st0 = await call<object, { status: { offset: string | number } }>(a.content(), 'Status', { ref: 'taken' });
      expect(Number(st0.status.offset)).toBe(2 * PART);
      const err = await toldToStartOver(a, 'taken', data);
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain('write the content again from offset 0');
      const st = await call<object, { status: { offset: string | number } }>(a.content(), 'Status', { ref: 'taken' });
      expect(Number(st.status.offset)).toBe(0);
    } finally {
      await a.stop();
    }
  });
});

describe('an ingest another daemon took up, and let go of', () => {
  it("is continued from that daemon's record by the daemon that kept a copy: the copy goes, and its client resumes at the record's checkpoint", async () => {
    const bucket = await newBucket();
    const [a, b] = await twoDaemonsOn(bucket);
    try {
      const data = randomBlob(3 * PART + MiB);
      const before = await takenUpByAnother(bucket, a, b, 'shared', data);
      // b's record names the upload it continues in
      await until(async () => (JSON.parse((await getObject(bucket, recordKey('shared'))).toString()) as Record).upload!.uploadId !== before.upload!.uploadId);
      const again = new WriteSession(a.content());
      expect(Number((await again.send({ action: 'STAT', ref: 'shared', total: data.length })).offset)).toBe(2 * PART);
      await sendRange(again, 'shared', data, 2 * PART, data.length);
      const done = await again.send({ action: 'COMMIT', ref: 'shared', total: data.length, offset: data.length, expected: digestOf(data) });
      again.close();
      expect(done.digest).toBe(digestOf(data));
      expect(a.logs.some((l) => l.msg === 'continuing an ingest from its checkpoint' && l.by === 'stored bytes read back')).toBe(true);
      expect(await listKeys(bucket, 's3cs/v1/ns/test/ingests/')).toEqual([]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('an ingest whose stored bytes are found gone', () => {
  it('answers Status and ListStatuses with offset 0 while the restart that began is under way, not the offset whose bytes are gone', async () => {
    const bucket = await newBucket();
    const { d: a, log } = await daemonLoggingRequests({ bucket, flags: { partSize: '5MiB' } });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    try {
      const data = randomBlob(3 * PART + MiB);
      const record = await goneUnder(bucket, a, 'gone', data);
      // a's restart gives its upload up first: held back until Status has answered
      let reached!: () => void;
      const restarting = new Promise<'restarting'>((resolve) => (reached = () => resolve('restarting')));
      log.intercept = async (op, key) => {
        if (op !== 'AbortMultipartUpload' || key !== record.upload!.key) return;
        reached();
        await released;
      };
      // Swift may close before it has read a refused part (Unavailable, parts kept): tried again
      let began = false;
      for (let attempt = 0; attempt < 4 && !began; attempt++) {
        const again = new WriteSession(a.content());
        const { offset } = await again.send({ action: 'STAT', ref: 'gone', total: data.length });
        const outcome = failure(
          (async () => {
            await sendRange(again, 'gone', data, Number(offset), data.length);
            return again.send({ action: 'COMMIT', ref: 'gone', total: data.length, offset: data.length, expected: digestOf(data) });
          })(),
        );
        began = (await Promise.race([restarting, outcome])) === 'restarting';
        if (!began) again.cancel();
      }
      expect(began).toBe(true);
      const asked = await call<object, { status: { offset: string | number } }>(a.content(), 'Status', { ref: 'gone' });
      const listed = await call<object, ListStatusesResponse__Output>(a.content(), 'ListStatuses', { filters: ['ref==gone'] });
      expect(Number(asked.status.offset)).toBe(0);
      expect(listed.statuses.map((st) => [st.ref, Number(st.offset)])).toEqual([['gone', 0]]);
    } finally {
      release();
      log.intercept = undefined;
      await a.stop();
    }
  });
});

describe('an ingest in a local directory, continued after a crash by reading its file back', () => {
  it('two streams taking up the same ref at once after a restart: one continues the file to a verified commit, the other is told the ref is locked', async () => {
    const root = join(tempDir('s3cs-reread-fs-'), 'root');
    const startOn = async (): Promise<Running> => {
      const socket = join(tempDir('s3cs-reread-'), 'content.sock');
      const running = await serve(['--address', `unix://${socket}`, '--root', root, '--log-level', 'debug'], children);
      const content = contentClient(`unix://${socket}`);
      clients.push(content);
      return { ...running, content };
    };
    const data = randomBlob(64 * MiB);
    const first = await startOn();
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'both', total: data.length });
    await sendRange(s, 'both', data, 0, 60 * MiB);
    await kill(first);

    const second = await startOn();
    const [a, b] = [new WriteSession(second.content), new WriteSession(second.content)];
    const opened = await Promise.allSettled([a, b].map((w) => w.send({ action: 'STAT', ref: 'both', total: data.length })));
    const won = opened.findIndex((o) => o.status === 'fulfilled');
    const lost = opened.find((o) => o.status === 'rejected');
    expect(won).toBeGreaterThanOrEqual(0);
    expect((lost?.reason as { code?: number } | undefined)?.code).toBe(status.UNAVAILABLE);
    const winner = [a, b][won]!;
    const offset = (opened[won] as PromiseFulfilledResult<{ offset: number }>).value.offset;
    expect(offset).toBeGreaterThan(0);
    await sendRange(winner, 'both', data, offset, data.length);
    const done = await winner.send({ action: 'COMMIT', ref: 'both', total: data.length, offset: data.length, expected: digestOf(data) });
    expect(done.digest).toBe(digestOf(data));
    expect((await readAll(second.content, digestOf(data))).equals(data)).toBe(true);
    for (const w of [a, b]) w.close();
  });
});
