import { status } from '@grpc/grpc-js';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { writeFileSync } from 'node:fs';
import { constants, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { openBlobStore } from '../src/server.js';
import type { BlobStore, Checkpoint, Upload } from '../src/blobstore/types.js';
import {
  call,
  getObject,
  newBucket,
  randomBlob,
  rawS3,
  s3,
  startDaemon,
  tempDir,
  until,
  useS3Credentials,
  WriteSession,
  writeBlob,
  type TestDaemon,
} from './support/harness.js';
import { grpcFrame, rawCall, type RawCall } from './support/raw-grpc.js';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { RequestLog } from './support/s3-requests.js';

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

describe('Write streams, when the daemon holds back', () => {
  const MiB = 1024 * 1024;
  /** Resolves once a new Write stream can take `ref` (no stream holds it locked any more). */
  const refFreeWithin = (client: ContentClient, ref: string, ms: number) =>
    until(async () => {
      const again = new WriteSession(client);
      const st = await again.send({ action: 'STAT', ref }).catch(() => undefined);
      again.cancel();
      return st !== undefined;
    }, ms);
  let d: TestDaemon;
  beforeAll(async () => {
    // room for exactly one part in the whole daemon
    d = await startDaemon({ flags: { partSize: '5MiB', maxBuffer: '5MiB' } });
  });
  afterAll(async () => d.stop());

  it('lets a Write cancelled while it waits for buffer space go at once, taking none of its bytes', async () => {
    const client = d.content();
    // one ingest holds the whole budget: a part but a byte
    const holder = new WriteSession(client);
    await holder.send({ action: 'STAT', ref: 'holds-the-budget' });
    await holder.send({ action: 'WRITE', ref: 'holds-the-budget', offset: 0, data: randomBlob(5 * MiB - 1) });
    const waiter = new WriteSession(client);
    await waiter.send({ action: 'STAT', ref: 'cancels-waiting' });
    void waiter.send({ action: 'WRITE', ref: 'cancels-waiting', offset: 0, data: randomBlob(MiB) }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    waiter.cancel();
    // the ref is free again right away (it stayed locked until the budget's 60 s wait ended)
    await refFreeWithin(client, 'cancels-waiting', 3_000);
    holder.cancel();
    await holder.ended;
    const st = await call<object, { status: { offset: string | number } }>(client, 'Status', { ref: 'cancels-waiting' });
    expect(Number(st.status.offset)).toBe(0);
  });

  it('lets a COMMIT cancelled while it waits for buffer space to take its spilled part back go at once', async () => {
    const client = d.content();
    const data = randomBlob(2 * MiB);
    // an ingest whose stream went away: its unfinished part waits on disk, holding no budget
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref: 'commit-cancels', total: data.length });
    await first.send({ action: 'WRITE', ref: 'commit-cancels', offset: 0, data });
    first.cancel();
    await until(async () => {
      const st = await call<object, { status: { offset: string | number } }>(client, 'Status', { ref: 'commit-cancels' }).catch(() => undefined);
      return Number(st?.status.offset) === data.length;
    });
    await new Promise((r) => setTimeout(r, 300));
    // another ingest holds the whole budget
    const holder = new WriteSession(client);
    await holder.send({ action: 'STAT', ref: 'holds-it-again' });
    await holder.send({ action: 'WRITE', ref: 'holds-it-again', offset: 0, data: randomBlob(5 * MiB - 1) });
    const committer = new WriteSession(client);
    await committer.send({ action: 'STAT', ref: 'commit-cancels', total: data.length });
    void committer.send({ action: 'COMMIT', ref: 'commit-cancels', total: data.length, offset: data.length, expected: digestOf(data) }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    committer.cancel();
    // the ref is free again right away (it stayed locked until the budget's 60 s wait ended)
    await refFreeWithin(client, 'commit-cancels', 3_000);
    holder.cancel();
    await holder.ended;
  });

  it('puts the part of a stream gone quiet on disk for a stream that waits for buffer space, and commits both blobs whole', async () => {
    const client = d.content();
    const quietData = randomBlob(5 * MiB + 100);
    const quiet = new WriteSession(client);
    const ref = 'goes-quiet';
    await quiet.send({ action: 'STAT', ref, total: quietData.length, expected: digestOf(quietData) });
    // a part but a byte: the whole budget, held while the stream sends nothing (a STAT now and then would not count)
    const lastSent = performance.now();
    await quiet.send({ action: 'WRITE', ref, offset: 0, data: quietData.subarray(0, 5 * MiB - 1) });
    const otherData = randomBlob(2 * MiB);
    const started = performance.now();
    const other = await writeBlob(client, 'waits-for-room', otherData, { expected: digestOf(otherData) });
    expect(other.digest).toBe(digestOf(otherData));
    // once the quiet stream had sent nothing for 5 s (counted from its last message, which the
    // daemon had after it was sent), not after the budget's 60 s wait
    expect(performance.now() - lastSent).toBeGreaterThan(4_990);
    expect(performance.now() - started).toBeLessThan(30_000);
    await quiet.send({ action: 'WRITE', ref, offset: 5 * MiB - 1, data: quietData.subarray(5 * MiB - 1) });
    const committed = await quiet.send({ action: 'COMMIT', ref, total: quietData.length, offset: quietData.length, expected: digestOf(quietData) });
    expect(committed.digest).toBe(digestOf(quietData));
    quiet.close();
    await quiet.ended;
    expect((await getObject(d.bucket!, `blobs/${digestOf(quietData)}`)).equals(quietData)).toBe(true);
    expect((await getObject(d.bucket!, `blobs/${digestOf(otherData)}`)).equals(otherData)).toBe(true);
  }, 60_000);

  it('stops reading the WRITEs of a client that does not read its answers', async () => {
    const count = 20_000;
    // A client that pipelines tiny WRITEs and reads nothing from its connection (grpc-js's own
    // client would take the answers in regardless): HTTP/2 flow control holds the answers back.
    const { session, stream: stalled } = rawCall(d.socket, '/containerd.services.content.v1.Content/Write');
    stalled.pause();
    const frames: Buffer[] = [];
    for (let i = 0; i < count; i++) frames.push(grpcFrame(writeRequest('never-reads', i, Buffer.from([i & 0xff]))));
    stalled.write(Buffer.concat(frames));
    const client = d.content();
    const offset = async () =>
      Number((await call<object, { status: { offset: string | number } }>(client, 'Status', { ref: 'never-reads' }).catch(() => ({ status: { offset: 0 } }))).status.offset);
    // until the daemon takes no more
    let last = -1;
    for (let now = await offset(); now !== last; now = await offset()) {
      last = now;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(count / 2);
    session.destroy();
  });
});

describe('Write streams whose client takes none of the answers, past --stream-idle-timeout', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs', flags: { streamIdleTimeout: '2s' } });
  });
  afterAll(async () => d.stop());

  it('are reset (RST_STREAM CANCEL), keeping the bytes their ingest acknowledged', async () => {
    const { session, stream: stalled, closed } = rawCall(d.socket, '/containerd.services.content.v1.Content/Write');
    stalled.pause();
    const frames: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) frames.push(grpcFrame(writeRequest('never-reads-answers', i, Buffer.from([i & 0xff]))));
    stalled.write(Buffer.concat(frames));
    // a status would wait behind the answers it never takes
    expect(await closed).toBe(8);
    const st = await call<object, { status: { offset: string | number } }>(d.content(), 'Status', { ref: 'never-reads-answers' });
    expect(Number(st.status.offset)).toBeGreaterThan(0);
    session.destroy();
  }, 30_000);
});

/**
 * The answers of a Write stream hold memory in gRPC until they reach the connection, so a stream
 * that ended (its client idle, a bad ref, a half-close) while they wait keeps its place among
 * --max-streams until then, or until its HTTP/2 stream is reset or closed. Its client here grants
 * no room for answers at all (an HTTP/2 stream window of 0), so every answer waits.
 */
describe('a Write stream that ended while its answers wait for its client', () => {
  const WRITE = '/containerd.services.content.v1.Content/Write';
  let d: TestDaemon;
  let client: ContentClient;
  const sessions: ClientHttp2Session[] = [];
  beforeAll(async () => {
    // long enough that a client's reset is seen well before the daemon's own, --stream-idle-timeout
    // after the stream ended, on a loaded machine
    d = await startDaemon({ backend: 'fs', flags: { maxStreams: '1', streamIdleTimeout: '4s' } });
    client = d.content();
  });
  // each test starts with the one place free, whatever the one before left
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await until(placeFree, 10_000, 50);
  });
  afterAll(async () => d.stop());

  /** A Write stream whose client takes none of its answers, having sent one WRITE. */
  const answersUntaken = (ref: string): RawCall => {
    const write = rawCall(d.socket, WRITE, { streamWindow: 0 });
    sessions.push(write.session);
    write.stream.write(grpcFrame(writeRequest(ref, 0, Buffer.from('abc'))));
    return write;
  };
  /** Write streams whose handler has ended so far (each logs one `call` line, with its code, as it ends). */
  const writesEnded = (code?: string) => d.logs.filter((l) => l.msg === 'call' && l.method === 'Write' && (code === undefined || l.code === code)).length;
  /** Whether a new Write stream is given a place: true when it is answered, false when refused for --max-streams. */
  const placeFree = async (): Promise<boolean> => {
    const probe = new WriteSession(client);
    try {
      await probe.send({ action: 'STAT', ref: 'probe' });
    } catch (err) {
      expect(err).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: expect.stringContaining('--max-streams 1') });
      return false;
    }
    probe.close();
    await probe.ended;
    return true;
  };

  // each ending is told apart by the code its stream ended with (the idle timeout ends any of them)
  const endings: [string, string, (write: RawCall) => void][] = [
    ['its client half-closed it', 'OK', (write) => void write.stream.end()],
    ['it named another ref (InvalidArgument)', 'INVALID_ARGUMENT', (write) => void write.stream.write(grpcFrame(writeRequest('another-ref', 3, Buffer.from('d'))))],
    ['its client sent nothing for --stream-idle-timeout', 'DEADLINE_EXCEEDED', () => undefined],
  ];
  for (const [ending, code, end] of endings) {
    it(`keeps its place after ${ending}, until its client resets it`, async () => {
      const before = writesEnded();
      const endedSo = writesEnded(code);
      const write = answersUntaken(`ended-${before}`);
      end(write);
      await until(() => writesEnded() > before, 10_000, 20);
      expect(writesEnded(code)).toBe(endedSo + 1);
      expect(await placeFree()).toBe(false);
      write.stream.close(constants.NGHTTP2_CANCEL);
      // well before the daemon would reset it itself, --stream-idle-timeout after it ended
      await until(placeFree, 1_000, 50);
    });
  }

  it('gives its place back once its client takes the answers', async () => {
    const before = writesEnded();
    const write = answersUntaken('taken-late');
    write.stream.end();
    await until(() => writesEnded() > before, 10_000, 20);
    expect(await placeFree()).toBe(false);
    write.session.settings({ initialWindowSize: 65_535 });
    await until(placeFree, 1_000, 50);
  });

  it('is reset (RST_STREAM CANCEL) once its client took nothing for --stream-idle-timeout, which gives its place back', async () => {
    const write = answersUntaken('reset-by-daemon');
    write.stream.end();
    expect(await write.closed).toBe(8);
    await until(placeFree, 1_000, 50);
  }, 15_000);
});

/** A WriteContentRequest with action WRITE, encoded by hand (protobuf wire format). */
function writeRequest(ref: string, offset: number, data: Buffer): Buffer {
  const varint = (n: number): number[] => {
    const out: number[] = [];
    for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n & 0x7f) | 0x80);
    out.push(n);
    return out;
  };
  const refBytes = Buffer.from(ref);
  return Buffer.from([
    ...[0x08, 1],
    ...[0x12, ...varint(refBytes.length), ...refBytes],
    ...[0x28, ...varint(offset)],
    ...[0x32, ...varint(data.length), ...data],
  ]);
}


describe('upload buffer budget, counted per upload', () => {
  it('covers every buffered byte, also when a client sends more than it first declared', async () => {
    useS3Credentials();
    const flags = { bucket: await newBucket(), endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB' };
    const store = await openBlobStore(resolveConfig(flags, {}), pino({ level: 'silent' }));
    try {
      const upload = store.createUpload({ sizeHint: 1000 });
      await upload.write(randomBlob(1000));
      expect(store.usage().uploadBuffer.inUse).toBe(1000);
      // the declared size was wrong: 3 MiB more arrive, and stay buffered (less than a part) in a
      // buffer doubled past them, all of it counted
      await upload.write(randomBlob(3 * 1024 * 1024));
      expect(store.usage().uploadBuffer.inUse).toBeGreaterThanOrEqual(3 * 1024 * 1024 + 1000);
      expect(store.usage().uploadBuffer.inUse).toBeLessThanOrEqual(5 * 1024 * 1024);
      await upload.abort();
      expect(store.usage().uploadBuffer.inUse).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe('upload part buffers, as bytes arrive', () => {
  let store: BlobStore;
  /** Counts the part buffers the store hands its uploads from now on. */
  const countTakes = () => {
    const parts = (store as unknown as { uploads: { parts: { take(size: number): Buffer } } }).uploads.parts;
    const take = parts.take.bind(parts);
    const counted = { takes: 0 };
    parts.take = (size: number) => {
      counted.takes++;
      return take(size);
    };
    return counted;
  };
  beforeAll(async () => {
    useS3Credentials();
    const flags = { bucket: await newBucket(), endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB' };
    store = await openBlobStore(resolveConfig(flags, {}), pino({ level: 'silent' }));
  });
  afterAll(async () => store.close());

  it('grow by doubling once a client sends more than it declared, instead of being copied at every WRITE', async () => {
    const counted = countTakes();
    const upload = store.createUpload({ sizeHint: 1 });
    await upload.write(randomBlob(1));
    for (let i = 0; i < 150; i++) await upload.write(randomBlob(32 * 1024));
    // 256 KiB doubled up to the part: a handful of buffers, not one per WRITE
    expect(counted.takes).toBeLessThanOrEqual(8);
    await upload.abort();
  });

  it('are taken whole at once for the parts after a stream\'s first, which it has shown it fills', async () => {
    const upload = store.createUpload({});
    for (let i = 0; i < 160; i++) await upload.write(randomBlob(32 * 1024));
    const counted = countTakes();
    for (let i = 0; i < 160; i++) await upload.write(randomBlob(32 * 1024));
    expect(counted.takes).toBe(1);
    await upload.abort();
  });
});

/**
 * An S3 store on a new bucket (parts of 5 MiB, and `flags`) whose part uploads are all held on
 * their way until `release`; `partsHeld` counts those sent.
 */
async function storeHoldingParts(flags: Record<string, string> = {}) {
  useS3Credentials();
  const bucket = await newBucket();
  const config = resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB', ...flags }, {});
  const client = createS3Client(config.s3!);
  const log = new RequestLog(client);
  const store = new S3BlobStore(config.s3!, client);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let sent = 0;
  log.intercept = (op) => {
    if (op !== 'UploadPart') return undefined;
    sent++;
    return held;
  };
  return { bucket, store, release, partsHeld: () => sent };
}

describe('upload part buffers, while parts are on their way to S3', () => {
  const MiB = 1024 * 1024;

  /**
   * An upload (parts of 5 MiB, `parallelism` in flight at most) that has sent that many parts, all
   * held on their way until `release`; `blob` is 15 MiB and a little.
   */
  async function partsOnTheirWay(parallelism = 2) {
    const { bucket, store, release, partsHeld } = await storeHoldingParts({ uploadParallelism: String(parallelism) });
    const upload = store.createUpload({});
    const blob = randomBlob(15 * MiB + 100);
    await upload.write(blob.subarray(0, parallelism * 5 * MiB));
    await until(() => partsHeld() === parallelism);
    /** Lets the parts go, commits the whole blob and reads it back. */
    const commitsWhole = async () => {
      const digest = digestOf(blob);
      await upload.commit(digest, blob.length);
      expect((await getObject(bucket, `blobs/${digest}`)).equals(blob)).toBe(true);
    };
    const close = async () => {
      release();
      await store.close();
    };
    return { store, upload, blob, release, commitsWhole, close };
  }

  it('are at most --upload-parallelism an upload: the next part starts filling only once one in flight is stored', async () => {
    const { store, upload, blob, release, commitsWhole, close } = await partsOnTheirWay();
    try {
      let thirdTaken = false;
      const third = upload.write(blob.subarray(10 * MiB)).then(() => (thirdTaken = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(thirdTaken).toBe(false);
      // the two in flight, and no third buffer filling beside them
      expect(store.usage().uploadBuffer.inUse).toBe(10 * MiB);
      release();
      await third;
      await commitsWhole();
    } finally {
      await close();
    }
  });

  it('end a write that waits for a part in flight at once when its client goes away, taking none of its bytes', async () => {
    const { store, upload, blob, release, commitsWhole, close } = await partsOnTheirWay();
    try {
      const leaving = new AbortController();
      const third = upload.write(blob.subarray(10 * MiB), leaving.signal);
      third.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      leaving.abort();
      // before either part in flight lands (they are held until release)
      await expect(third).rejects.toMatchObject({ kind: 'cancelled' });
      expect(store.usage().uploadBuffer.inUse).toBe(10 * MiB);
      // nothing of it was taken: the same bytes are written again, and the blob commits whole
      release();
      await upload.write(blob.subarray(10 * MiB));
      await commitsWhole();
    } finally {
      await close();
    }
  });

  it('end a write that would complete a part at once when its client goes away, with one part in flight at most too', async () => {
    const { store, upload, blob, release, commitsWhole, close } = await partsOnTheirWay(1);
    try {
      const leaving = new AbortController();
      const second = upload.write(blob.subarray(5 * MiB, 10 * MiB), leaving.signal);
      second.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      leaving.abort();
      await expect(second).rejects.toMatchObject({ kind: 'cancelled' });
      expect(store.usage().uploadBuffer.inUse).toBe(5 * MiB);
      release();
      await upload.write(blob.subarray(5 * MiB));
      await commitsWhole();
    } finally {
      await close();
    }
  });
});

describe('an upload put aside whose unfinished part cannot go to disk', () => {
  const MiB = 1024 * 1024;

  it('settles its failure only once the part on its way has landed: the ingest is recorded as let go only after that', async () => {
    // a spill directory under a regular file: making it fails, as on a full or read-only disk
    const notADir = join(tempDir('s3cs-no-spill-'), 'file');
    writeFileSync(notADir, '');
    const { store, release, partsHeld } = await storeHoldingParts({ spillDir: notADir });
    let durable = 0;
    const upload = store.createUpload({ onDurable: (c) => (durable = c.offset) });
    try {
      // part 1 on its way (held), and 100 bytes of part 2 that would go to disk
      await upload.write(randomBlob(5 * MiB + 100));
      await until(() => partsHeld() === 1);
      let settled = false;
      const suspended = upload.suspend().then(
        () => 'put aside',
        () => 'failed',
      );
      void suspended.finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(settled).toBe(false);
      release();
      expect(await suspended).toBe('failed');
      expect(durable).toBe(5 * MiB);
    } finally {
      release();
      await upload.abort().catch(() => undefined);
      await store.close();
    }
  });
});

describe('upload buffer budget, for an ingest continued from another daemon\'s parts', () => {
  const MiB = 1024 * 1024;

  /**
   * A daemon with 8 MiB parts that stored one part of an ingest to the staging area, and one whose
   * whole --max-buffer (5 MiB) is less than that part, both on a new bucket.
   */
  async function partsLargerThanTheBudget(run: (small: BlobStore, checkpoint: Checkpoint, bucket: string) => Promise<void>): Promise<void> {
    useS3Credentials();
    const bucket = await newBucket();
    const open = (flags: Record<string, string>) =>
      openBlobStore(resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region, ...flags }, {}), pino({ level: 'silent' }));
    const large = await open({ partSize: '8MiB', maxBuffer: '64MiB' });
    const small = await open({ partSize: '5MiB', maxBuffer: '5MiB' });
    try {
      let checkpoint: Checkpoint | undefined;
      // no target: the upload goes to the staging area, and a checkpoint there can be read back
      const upload = large.createUpload({ onDurable: (c) => (checkpoint = c) });
      await upload.write(randomBlob(8 * MiB + 10));
      await until(() => checkpoint !== undefined);
      await run(small, checkpoint!, bucket);
      await upload.abort();
    } finally {
      await large.close();
      await small.close();
    }
  }

  it('starts over an ingest whose stored parts are larger than the whole budget, rather than buffer one past it', async () => {
    await partsLargerThanTheBudget(async (small, checkpoint) => {
      expect(() => small.createUpload({ resume: checkpoint })).toThrow(/8388608 bytes, more than this daemon's --max-buffer \(5242880\)/);
      expect(small.usage().uploadBuffer.inUse).toBe(0);
    });
  });

  it('refuses such an ingest kept in the staging area before reading it back: nothing is completed, copied or read', async () => {
    await partsLargerThanTheBudget(async (small, checkpoint, bucket) => {
      let read = 0;
      await expect(small.reopenCheckpoint(checkpoint, (chunk) => (read += chunk.length))).rejects.toThrow(
        /8388608 bytes, more than this daemon's --max-buffer \(5242880\)/,
      );
      expect(read).toBe(0);
      // the upload is where it was, not completed, and no copy of it was begun
      const uploads = (await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
      expect(uploads.map((u) => u.UploadId)).toEqual([checkpoint.handle.uploadId]);
    });
  });
});

describe('upload buffer budget, when spent', () => {
  const MiB = 1024 * 1024;
  let store: BlobStore;
  let bucket: string;
  beforeAll(async () => {
    useS3Credentials();
    bucket = await newBucket();
    // room for exactly one part, which an upload holds once it has buffered a part but a byte
    const flags = { bucket, endpointUrl: s3().endpoint, region: s3().region, partSize: '5MiB', maxBuffer: '5MiB' };
    store = await openBlobStore(resolveConfig(flags, {}), pino({ level: 'silent' }));
  });
  afterAll(async () => store.close());

  /**
   * A first upload holds the whole budget; a second one's first write is made. Before the first
   * gives its buffer back, the second write has had a real S3 round trip's worth of event-loop
   * turns to be accepted (it needs none if it is not held); the order of events says it was not.
   */
  async function secondWaitsFor(release: (first: Upload, written: Buffer) => Promise<void>): Promise<string[]> {
    const events: string[] = [];
    const first = store.createUpload({});
    const written = randomBlob(5 * MiB - 1);
    await first.write(written);
    events.push('first accepted');
    expect(store.usage().uploadBuffer.inUse).toBe(5 * MiB);

    const second = store.createUpload({});
    const accepted = second.write(randomBlob(1024)).then(() => events.push('second accepted'));
    await store.statBlob(digestOf('a round trip to S3'));
    await new Promise((r) => setImmediate(r));
    expect(store.usage().uploadBuffer.inUse).toBe(5 * MiB);

    events.push('first releases');
    await release(first, written);
    await accepted;
    await second.abort();
    expect(store.usage().uploadBuffer.inUse).toBe(0);
    return events;
  }

  it('holds a second writer until the first upload is aborted', async () => {
    expect(await secondWaitsFor((first) => first.abort())).toEqual(['first accepted', 'first releases', 'second accepted']);
  });

  it('holds a second writer until the first upload is committed', async () => {
    const events = await secondWaitsFor((first, written) => first.commit(digestOf(written), written.length));
    expect(events).toEqual(['first accepted', 'first releases', 'second accepted']);
  });

  it('holds a writer budget for about the bytes it buffered, not for the part it may never fill', async () => {
    const quiet = store.createUpload({});
    await quiet.write(randomBlob(1));
    expect(store.usage().uploadBuffer.inUse).toBeLessThanOrEqual(256 * 1024);
    // a writer that sent one byte and went quiet leaves the rest to others, at once
    const busy = store.createUpload({});
    let accepted = false;
    const writing = busy.write(randomBlob(4 * MiB)).then(() => (accepted = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(accepted).toBe(true);
    await writing;
    await Promise.all([quiet.abort(), busy.abort()]);
    expect(store.usage().uploadBuffer.inUse).toBe(0);
  });

  it('puts the part of an upload whose stream went quiet on disk for a writer that waits, and takes it back with its next byte', async () => {
    const quiet = store.createUpload({});
    const blob = randomBlob(5 * MiB);
    const lastWrite = performance.now();
    await quiet.write(blob.subarray(0, 5 * MiB - 1));
    expect(store.usage().uploadBuffer.inUse).toBe(5 * MiB);
    const started = performance.now();
    const other = store.createUpload({});
    await other.write(randomBlob(MiB));
    // not before the quiet one had been quiet for its 5 s, and long before the budget's 60 s wait
    expect(performance.now() - lastWrite).toBeGreaterThan(4_990);
    expect(performance.now() - started).toBeLessThan(20_000);
    await other.abort();
    await quiet.write(blob.subarray(5 * MiB - 1));
    await quiet.commit(digestOf(blob), blob.length);
    expect((await getObject(bucket, `blobs/${digestOf(blob)}`)).equals(blob)).toBe(true);
    expect(store.usage().uploadBuffer.inUse).toBe(0);
  }, 30_000);

  it('leaves the part of a quiet upload in memory while nobody waits for the budget', async () => {
    const quiet = store.createUpload({});
    await quiet.write(randomBlob(3 * MiB));
    const held = store.usage().uploadBuffer.inUse;
    expect(held).toBeGreaterThanOrEqual(3 * MiB);
    await new Promise((r) => setTimeout(r, 6_000));
    expect(store.usage().uploadBuffer.inUse).toBe(held);
    await quiet.abort();
  }, 15_000);

  it('lets writers that each hold part of a part all finish their parts', async () => {
    // each buffers more than half the budget's part: neither can grow while the other holds its bytes
    const uploads = [store.createUpload({}), store.createUpload({})];
    const blobs = [randomBlob(5 * MiB - 1), randomBlob(5 * MiB - 1)];
    for (const [i, u] of uploads.entries()) await u.write(blobs[i]!.subarray(0, 2 * MiB));
    await Promise.all(
      uploads.map(async (u, i) => {
        await u.write(blobs[i]!.subarray(2 * MiB));
        await u.commit(digestOf(blobs[i]!), blobs[i]!.length);
      }),
    );
    for (const b of blobs) expect((await getObject(bucket, `blobs/${digestOf(b)}`)).equals(b)).toBe(true);
    expect(store.usage().uploadBuffer.inUse).toBe(0);
  });
});
