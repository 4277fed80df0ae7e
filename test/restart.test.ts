import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import { childrenOfEachTest, contentClient, serve, type ServingChild } from './support/child.js';
import {
  call,
  collect,
  failure,
  getObject,
  newBucket,
  ns,
  randomBlob,
  rawS3,
  s3,
  tempDir,
  until,
  uploadsOlderThan,
  useS3Credentials,
  WriteSession,
} from './support/harness.js';

/**
 * The daemon killed with SIGKILL and started again: what was stored before the kill is kept and
 * continued, and nothing partial ever shows under a blob key. Each daemon runs in its own
 * process (the built CLI) so it can really be killed.
 */
const MiB = 1024 * 1024;
const PART = 5 * MiB;

const { children, clients } = childrenOfEachTest();

interface Running extends ServingChild {
  socket: string;
  content: ContentClient;
}

async function start(bucket: string, ...extra: string[]): Promise<Running> {
  useS3Credentials();
  const socket = join(tempDir('s3cs-restart-'), 'content.sock');
  const args = ['--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region];
  const running = await serve([...args, '--part-size', '5MiB', '--log-level', 'debug', ...extra], children);
  const content = contentClient(`unix://${socket}`);
  clients.push(content);
  return { ...running, socket, content };
}

/** A daemon serving from a local directory (no bucket) at `root`. */
async function startInDirectory(root: string): Promise<Running> {
  const socket = join(tempDir('s3cs-restart-'), 'content.sock');
  const running = await serve(['--address', `unix://${socket}`, '--root', root, '--log-level', 'debug'], children);
  const content = contentClient(`unix://${socket}`);
  clients.push(content);
  return { ...running, socket, content };
}

async function kill(d: Running): Promise<void> {
  d.child.kill('SIGKILL');
  await d.exited;
}

/** The ingest record the daemon keeps in the bucket, once it says at least `offset` bytes are stored. */
async function storedUpTo(bucket: string, ref: string, offset: number, read = (key: string) => getObject(bucket, key)): Promise<void> {
  const key = `s3cs/v1/ns/test/ingests/${ref}`;
  for (let i = 0; i < 200; i++) {
    const record = await read(key).then(
      (b) => JSON.parse(b.toString()) as { offset: number },
      () => undefined,
    );
    if (record && record.offset >= offset) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the record of ${ref} never reached offset ${offset}`);
}

async function sendRange(s: WriteSession, ref: string, data: Buffer, from: number, to: number): Promise<void> {
  for (let off = from; off < to; off += MiB) {
    await s.send({ action: 'WRITE', ref, offset: off, data: data.subarray(off, Math.min(off + MiB, to)) });
  }
}

async function readAll(client: ContentClient, digest: string): Promise<Buffer> {
  const chunks = await collect<{ data: Buffer }>(client.Read({ digest }, ns()));
  return Buffer.concat(chunks.map((c) => c.data));
}

async function uploadsIn(bucket: string): Promise<{ key: string; uploadId: string }[]> {
  const out = await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

/** Parts stored so far in the bucket's only multipart upload (0 without one). */
async function partsStored(bucket: string): Promise<number> {
  const [upload] = await uploadsIn(bucket);
  if (!upload) return 0;
  const out = await rawS3().send(new ListPartsCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }));
  return out.Parts?.length ?? 0;
}

async function present(bucket: string, key: string): Promise<number | undefined> {
  return rawS3()
    .send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    .then((o) => o.ContentLength, () => undefined);
}

/** Writes from the offset Status reports to the end, then commits with the expected digest. */
async function resume(client: ContentClient, ref: string, data: Buffer): Promise<number> {
  const digest = digestOf(data);
  const s = new WriteSession(client);
  const st = await s.send({ action: 'STAT', ref, total: data.length, expected: digest });
  await sendRange(s, ref, data, st.offset, data.length);
  const done = await s.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digest });
  s.close();
  await s.ended;
  expect(done.digest).toBe(digest);
  return st.offset;
}

describe('a daemon killed with SIGKILL and started again', () => {
  it('reports the bytes already stored in Status, and the same ref continues from there to a verified commit', async () => {
    const bucket = await newBucket();
    const data = randomBlob(4 * PART + 3 * MiB);
    const digest = digestOf(data);
    const first = await start(bucket);
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'killed-mid', total: data.length, expected: digest });
    await sendRange(s, 'killed-mid', data, 0, 3 * PART + 2 * MiB);
    await storedUpTo(bucket, 'killed-mid', 3 * PART);
    await kill(first);
    // the record still names the killed daemon as its holder: the next one, on this machine, sees
    // that process gone and continues at once (from another host it would wait for the hold to lapse)
    const left = JSON.parse((await getObject(bucket, 's3cs/v1/ns/test/ingests/killed-mid')).toString()) as { heldBy?: { pid: number } };
    expect(left.heldBy?.pid).toBe(first.child.pid);

    const second = await start(bucket);
    const st = await call<object, { status: { offset: number; total: number; expected: string } }>(second.content, 'Status', { ref: 'killed-mid' });
    expect(st.status).toMatchObject({ offset: 3 * PART, total: data.length, expected: digest });
    expect(await resume(second.content, 'killed-mid', data)).toBe(3 * PART);
    expect((await readAll(second.content, digest)).equals(data)).toBe(true);
    expect(await uploadsIn(bucket)).toEqual([]);
    expect(second.lines.some((l) => l.msg === 'continuing an ingest from its checkpoint' && l.offset === 3 * PART)).toBe(true);
    // and it still stops on SIGTERM (its hash workers do not hold it open)
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('refuses to continue a recorded ingest with a different total, and the right total still continues it', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART + MiB);
    const first = await start(bucket);
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'resized', total: data.length });
    await sendRange(s, 'resized', data, 0, 2 * PART + MiB);
    await storedUpTo(bucket, 'resized', 2 * PART);
    await kill(first);

    const second = await start(bucket);
    const err = await failure(new WriteSession(second.content).send({ action: 'STAT', ref: 'resized', total: data.length + 1 }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(`provided total ${data.length + 1} differs from the ingest's total ${data.length}`);
    expect(await resume(second.content, 'resized', data)).toBe(2 * PART);
  });

  it('with --no-crash-resume records no checkpoint: an ingest killed with its daemon starts over from 0, verified', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART + MiB);
    const digest = digestOf(data);
    const first = await start(bucket, '--no-crash-resume');
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'no-resume', total: data.length, expected: digest });
    await sendRange(s, 'no-resume', data, 0, 2 * PART + MiB);
    // two parts are stored in the bucket, which would have made a checkpoint without the flag
    for (let i = 0; (await partsStored(bucket)) < 2; i++) {
      if (i > 200) throw new Error('the parts were never stored');
      await new Promise((r) => setTimeout(r, 50));
    }
    // the record names the upload (so it can be discarded) but holds no checkpoint
    await storedUpTo(bucket, 'no-resume', 0);
    const record = JSON.parse((await getObject(bucket, 's3cs/v1/ns/test/ingests/no-resume')).toString()) as { offset: number; hash?: unknown };
    expect(record.offset).toBe(0);
    expect(record.hash).toBeUndefined();
    await kill(first);

    const second = await start(bucket, '--no-crash-resume');
    const st = await call<object, { status: { offset: number } }>(second.content, 'Status', { ref: 'no-resume' });
    expect(st.status.offset).toBe(0);
    expect(await resume(second.content, 'no-resume', data)).toBe(0);
    expect((await readAll(second.content, digest)).equals(data)).toBe(true);
    expect(await uploadsIn(bucket)).toEqual([]); // the killed daemon's parts were discarded
  });

  it('continues the digest over all the bytes: a different tail after the checkpoint fails the commit', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + MiB);
    const first = await start(bucket);
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'tampered', total: data.length, expected: digestOf(data) });
    await sendRange(s, 'tampered', data, 0, 2 * PART);
    await storedUpTo(bucket, 'tampered', 2 * PART);
    await kill(first);

    const second = await start(bucket);
    const other = Buffer.concat([data.subarray(0, 2 * PART), randomBlob(MiB)]);
    const r = new WriteSession(second.content);
    const st = await r.send({ action: 'STAT', ref: 'tampered', total: data.length });
    expect(st.offset).toBe(2 * PART);
    await sendRange(r, 'tampered', other, 2 * PART, other.length);
    const err = await failure(
      r.send({ action: 'COMMIT', ref: 'tampered', total: data.length, offset: data.length, expected: digestOf(data) }),
    );
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(`unexpected commit digest ${digestOf(other)}, expected ${digestOf(data)}`);
    expect(await present(bucket, `blobs/${digestOf(data)}`)).toBeUndefined();
    expect(await present(bucket, `blobs/${digestOf(other)}`)).toBeUndefined();
  });

  it('between the last WRITE and COMMIT: nothing is visible, and the ingest continues from its last stored part', async () => {
    const bucket = await newBucket();
    const data = randomBlob(4 * PART + 2 * MiB);
    const digest = digestOf(data);
    const first = await start(bucket);
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'before-commit', total: data.length, expected: digest });
    await sendRange(s, 'before-commit', data, 0, data.length);
    await storedUpTo(bucket, 'before-commit', 4 * PART);
    await kill(first);

    expect(await present(bucket, `blobs/${digest}`)).toBeUndefined();
    const second = await start(bucket);
    expect((await failure(call(second.content, 'Info', { digest }))).code).toBe(status.NOT_FOUND);
    expect(await resume(second.content, 'before-commit', data)).toBe(4 * PART);
    expect((await readAll(second.content, digest)).equals(data)).toBe(true);
  });

  it('during COMMIT: the blob is afterwards either complete and correct or absent, never partial', async () => {
    const bucket = await newBucket();
    const outcomes: string[] = [];
    // Kills land at different moments of the commit (completing the upload, recording, answering).
    for (const delay of [0, 5, 15, 40, 100]) {
      const data = randomBlob(3 * PART + MiB);
      const digest = digestOf(data);
      const ref = `commit-${delay}`;
      const first = await start(bucket);
      const s = new WriteSession(first.content);
      await s.send({ action: 'STAT', ref, total: data.length, expected: digest });
      await sendRange(s, ref, data, 0, data.length);
      const committing = s.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digest }).then(
        () => 'acknowledged',
        () => 'cut off',
      );
      await new Promise((r) => setTimeout(r, delay));
      await kill(first);
      const answer = await committing;

      const size = await present(bucket, `blobs/${digest}`);
      if (size !== undefined) {
        expect(size).toBe(data.length);
        expect((await getObject(bucket, `blobs/${digest}`)).equals(data)).toBe(true);
        outcomes.push(`${delay}ms: ${answer}, present`);
      } else {
        // Absent: never acknowledged, and the ingest can still be completed; or S3 finished the
        // completion the daemon had asked for just before it died, and the blob is there whole.
        expect(answer).toBe('cut off');
        const second = await start(bucket);
        const code = await resume(second.content, ref, data).then(
          () => status.OK,
          (e: { code: number }) => e.code,
        );
        expect([status.OK, status.ALREADY_EXISTS]).toContain(code);
        expect((await readAll(second.content, digest)).equals(data)).toBe(true);
        await kill(second);
        outcomes.push(`${delay}ms: ${answer}, absent then ${code === status.OK ? 'completed' : 'found complete'}`);
      }
    }
    expect(outcomes).toHaveLength(5);
    console.log(`kill during commit: ${outcomes.join('; ')}`);
  });

  it('a checkpoint whose upload is gone (completed or aborted elsewhere): COMMIT says to start over, and offset 0 does', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART + MiB);
    const digest = digestOf(data);
    const first = await start(bucket);
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'gone', total: data.length, expected: digest });
    await sendRange(s, 'gone', data, 0, 2 * PART);
    await storedUpTo(bucket, 'gone', 2 * PART);
    await kill(first);
    for (const u of await uploadsIn(bucket)) {
      await rawS3().send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.key, UploadId: u.uploadId }));
    }

    const second = await start(bucket);
    const r = new WriteSession(second.content);
    expect((await r.send({ action: 'STAT', ref: 'gone', total: data.length, expected: digest })).offset).toBe(2 * PART);
    await sendRange(r, 'gone', data, 2 * PART, data.length);
    const err = await failure(r.send({ action: 'COMMIT', ref: 'gone', total: data.length, offset: data.length, expected: digest }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('no longer exists (completed or aborted elsewhere); write the content again from offset 0');
    expect(await present(bucket, `blobs/${digest}`)).toBeUndefined();

    const again = new WriteSession(second.content);
    await again.send({ action: 'STAT', ref: 'gone', total: data.length, expected: digest });
    await sendRange(again, 'gone', data, 0, data.length);
    const done = await again.send({ action: 'COMMIT', ref: 'gone', total: data.length, offset: data.length, expected: digest });
    expect(done.digest).toBe(digest);
    expect((await getObject(bucket, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('records an ingest its client started over at offset 0 again: the new upload\'s checkpoints move the record on, and its COMMIT removes the record', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART);
    const digest = digestOf(data);
    const d = await start(bucket);
    const key = 's3cs/v1/ns/test/ingests/again';
    const uploadOf = async () => (JSON.parse((await getObject(bucket, key)).toString()) as { upload: { uploadId: string } }).upload.uploadId;
    try {
      const s = new WriteSession(d.content);
      await s.send({ action: 'STAT', ref: 'again', total: data.length, expected: digest });
      await sendRange(s, 'again', data, 0, 2 * PART);
      await storedUpTo(bucket, 'again', 2 * PART);
      const first = await uploadOf();
      await sendRange(s, 'again', data, 0, 2 * PART);
      // the record names the new upload once its first part is stored
      await until(async () => (await uploadOf().catch(() => first)) !== first);
      await sendRange(s, 'again', data, 2 * PART, data.length);
      const done = await s.send({ action: 'COMMIT', ref: 'again', total: data.length, offset: data.length, expected: digest });
      s.close();
      expect(done.digest).toBe(digest);
      expect(await present(bucket, key)).toBeUndefined();
    } finally {
      await kill(d);
    }
  });

  it('removes the record of an ingest its client started over at offset 0 and then aborted, before the new upload stored a part', async () => {
    const bucket = await newBucket();
    const data = randomBlob(2 * PART);
    const d = await start(bucket);
    try {
      const s = new WriteSession(d.content);
      await s.send({ action: 'STAT', ref: 'aborted', total: data.length });
      await sendRange(s, 'aborted', data, 0, 2 * PART);
      await storedUpTo(bucket, 'aborted', 2 * PART);
      await sendRange(s, 'aborted', data, 0, MiB);
      s.close();
      await s.ended;
      await call(d.content, 'Abort', { ref: 'aborted' });
      expect(await present(bucket, 's3cs/v1/ns/test/ingests/aborted')).toBeUndefined();
      expect((await failure(call(d.content, 'Status', { ref: 'aborted' }))).code).toBe(status.NOT_FOUND);
    } finally {
      await kill(d);
    }
  });

  it('sweeps at start the staging uploads nobody owns, and keeps recorded ingests and uploads under blob keys', async () => {
    const bucket = await newBucket();
    const s3c = rawS3();
    const orphan = async (key: string) => {
      const { UploadId } = await s3c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await s3c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBlob(PART) }));
      return UploadId!;
    };
    const stagingOrphan = await orphan('s3cs/staging/2026-01-01/left-by-a-crash');
    // BuildKit's own exporter uploads large blobs as multipart uploads under blob keys.
    const buildkitKey = `blobs/${digestOf(randomBlob(16))}`;
    const buildkitUpload = await orphan(buildkitKey);

    const data = randomBlob(3 * PART);
    const first = await start(bucket);
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'recorded', total: data.length, expected: digestOf(data) });
    await sendRange(s, 'recorded', data, 0, 2 * PART + MiB);
    await storedUpTo(bucket, 'recorded', 2 * PART);
    await kill(first);
    await uploadsOlderThan(bucket, 1_000);

    const second = await start(bucket, '--orphan-upload-grace', '1s');
    for (let i = 0; i < 100 && (await uploadsIn(bucket)).some((u) => u.uploadId === stagingOrphan); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const left = (await uploadsIn(bucket)).map((u) => u.uploadId);
    expect(left).not.toContain(stagingOrphan);
    expect(left).toContain(buildkitUpload);
    expect(await resume(second.content, 'recorded', data)).toBe(2 * PART);
    await s3c.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: buildkitKey, UploadId: buildkitUpload }));
  });

  it('in a local directory (no bucket) too: the same ref continues from the last synced checkpoint', async () => {
    const root = join(tempDir('s3cs-restart-fs-'), 'data');
    const startFs = () => startInDirectory(root);
    const data = randomBlob(20 * MiB);
    const digest = digestOf(data);
    const first = await startFs();
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'fs-killed', total: data.length, expected: digest });
    await sendRange(s, 'fs-killed', data, 0, 19 * MiB);
    await storedUpTo('', 'fs-killed', 16 * MiB, (key) => readFile(join(root, key)));
    await kill(first);

    const second = await startFs();
    expect(await resume(second.content, 'fs-killed', data)).toBe(16 * MiB);
    expect(readFileSync(join(root, 'blobs', digest)).equals(data)).toBe(true);
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('in a local directory, an ingest continued after a crash and then started over by its client at 0 leaves no record once aborted', async () => {
    const root = join(tempDir('s3cs-restart-fs-'), 'data');
    const startFs = () => startInDirectory(root);
    const data = randomBlob(20 * MiB);
    const first = await startFs();
    const s = new WriteSession(first.content);
    await s.send({ action: 'STAT', ref: 'fs-again', total: data.length });
    await sendRange(s, 'fs-again', data, 0, 17 * MiB);
    await storedUpTo('', 'fs-again', 16 * MiB, (key) => readFile(join(root, key)));
    await kill(first);

    const second = await startFs();
    try {
      const r = new WriteSession(second.content);
      expect((await r.send({ action: 'STAT', ref: 'fs-again', total: data.length })).offset).toBe(16 * MiB);
      await sendRange(r, 'fs-again', data, 0, MiB);
      r.close();
      await r.ended;
      await call(second.content, 'Abort', { ref: 'fs-again' });
      expect((await failure(call(second.content, 'Status', { ref: 'fs-again' }))).code).toBe(status.NOT_FOUND);
      expect(existsSync(join(root, 's3cs/v1/ns/test/ingests/fs-again'))).toBe(false);
    } finally {
      await kill(second);
    }
  });

  it('lets ctr continue its ingest with the same ref after the daemon was killed under it', async () => {
    const bucket = await newBucket();
    const data = randomBlob(3 * PART + 123);
    const digest = digestOf(data);
    const file = join(tempDir('s3cs-restart-ctr-'), 'blob.bin');
    writeFileSync(file, data);
    const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };
    // `command` runs ctr as `exec ctr "$@"`, fed as the test wants
    const ingest = (socket: string, command: string) => {
      const args = ['--address', socket, '-n', 'test', 'content', 'ingest', '--expected-digest', digest, 'ctr-killed'];
      // its own process group, so the feeding pipeline can be killed along with ctr
      const child = spawn('sh', ['-c', command, 'sh', ...args], { env, stdio: ['ignore', 'ignore', 'ignore'], detached: true });
      children.push(child);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { exited, killGroup: () => process.kill(-child.pid!, 'SIGKILL') };
    };

    const first = await start(bucket);
    // The first ctr gets two parts' worth of input, then waits: the daemon dies under it.
    const cut = ingest(first.socket, `{ head -c ${2 * PART + MiB} "${file}"; sleep 30; } | exec ctr "$@"`);
    await storedUpTo(bucket, 'ctr-killed', 2 * PART);
    await kill(first);
    cut.killGroup();
    await cut.exited;

    const second = await start(bucket);
    // ctr seeks its input to the offset Status reports, so this time it reads the file itself
    expect(await ingest(second.socket, `exec ctr "$@" < "${file}"`).exited).toBe(0);
    expect(second.lines.some((l) => l.msg === 'continuing an ingest from its checkpoint' && l.offset === 2 * PART)).toBe(true);
    expect((await getObject(bucket, `blobs/${digest}`)).equals(data)).toBe(true);
  });
});
