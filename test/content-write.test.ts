import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import type { Config } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import {
  call,
  failure,
  getObject,
  listKeys,
  ns,
  randomBlob,
  startDaemon,
  WriteSession,
  writeBlob,
  type TestDaemon,
} from './support/harness.js';

describe('Write on S3', () => {
  let d: TestDaemon;
  let client: ContentClient;

  beforeAll(async () => {
    // 5 MiB parts keep the multipart cases small while exercising every path.
    d = await startDaemon({ flags: { partSize: '5MiB' } });
    client = d.content();
  });
  afterAll(async () => d.stop());

  it('commits a blob to blobs/<digest> with exactly the written bytes and nothing else under blobs/', async () => {
    const before = await listKeys(d.bucket!, 'blobs/');
    const data = randomBlob(300_000);
    const digest = digestOf(data);
    const done = await writeBlob(client, 'small-1', data, { expected: digest });
    expect(done).toMatchObject({ action: 'COMMIT', digest, offset: data.length });
    expect(await listKeys(d.bucket!, 'blobs/')).toEqual([...before, `blobs/${digest}`].sort());
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('streams a multi-part blob straight to its key when the digest is known up front', async () => {
    const data = randomBlob(12 * 1024 * 1024 + 123);
    const digest = digestOf(data);
    await writeBlob(client, 'multi-expected', data, { expected: digest, chunk: 512 * 1024 });
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('commits a multi-part blob without an expected digest and leaves no staging object behind', async () => {
    const data = randomBlob(11 * 1024 * 1024);
    const digest = digestOf(data);
    const done = await writeBlob(client, 'multi-unknown', data);
    expect(done.digest).toBe(digest);
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
    expect((await listKeys(d.bucket!, 's3cs/staging/'))).toEqual([]);
  });

  it('commits a multi-part blob whose size was never declared, written in uneven pieces', async () => {
    // no total until COMMIT: the part buffer starts small and grows as the bytes keep coming
    const data = randomBlob(11 * 1024 * 1024 + 333);
    const digest = digestOf(data);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'multi-undeclared', total: 0 });
    for (let off = 0, n = 1000; off < data.length; off += n, n = Math.min(1 << 20, n * 3)) {
      await session.send({ action: 'WRITE', ref: 'multi-undeclared', offset: off, data: data.subarray(off, off + n) });
    }
    const done = await session.send({ action: 'COMMIT', ref: 'multi-undeclared', total: data.length, offset: data.length });
    session.close();
    expect(done.digest).toBe(digest);
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('takes a total raised mid-stream past one part, and commits exactly the bytes sent', async () => {
    // declared as 1000 bytes, then the second WRITE says the blob is larger: a part must grow
    const data = randomBlob(12 * 1024 * 1024 + 7);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'raised-total', total: 1000 });
    await session.send({ action: 'WRITE', ref: 'raised-total', offset: 0, data: data.subarray(0, 1000) });
    for (let off = 1000; off < data.length; off += 1 << 20) {
      await session.send({ action: 'WRITE', ref: 'raised-total', total: data.length, offset: off, data: data.subarray(off, off + (1 << 20)) });
    }
    const done = await session.send({ action: 'COMMIT', ref: 'raised-total', total: data.length, offset: data.length });
    session.close();
    expect(done.digest).toBe(digestOf(data));
    expect((await getObject(d.bucket!, `blobs/${digestOf(data)}`)).equals(data)).toBe(true);
  });

  it('answers every request with exactly one response, echoing its action', async () => {
    const data = randomBlob(3000);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'one-each', total: data.length });
    await session.send({ action: 'STAT', ref: 'one-each' });
    await session.send({ action: 'WRITE', ref: 'one-each', offset: 0, data: data.subarray(0, 1000) });
    await session.send({ action: 'WRITE', ref: 'one-each', offset: 1000, data: data.subarray(1000) });
    await session.send({ action: 'COMMIT', ref: 'one-each', total: data.length, offset: data.length });
    session.close();
    await session.ended;
    expect(session.responses.map((r) => r.action)).toEqual(['STAT', 'STAT', 'WRITE', 'WRITE', 'COMMIT']);
    expect(session.responses.map((r) => r.offset)).toEqual([0, 0, 1000, 3000, 3000]);
  });

  it('answers each WRITE with the digest of the bytes so far where the stream expects none (containerd\'s client takes its Digest() from them)', async () => {
    const data = randomBlob(3000);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'digest-so-far', total: data.length });
    const first = await session.send({ action: 'WRITE', ref: 'digest-so-far', offset: 0, data: data.subarray(0, 1000) });
    const second = await session.send({ action: 'WRITE', ref: 'digest-so-far', offset: 1000, data: data.subarray(1000) });
    session.close();
    expect(first.digest).toBe(digestOf(data.subarray(0, 1000)));
    expect(second.digest).toBe(digestOf(data));
  });

  it('answers a WRITE with no digest where the stream declared the one it expects', async () => {
    const data = randomBlob(2000);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'digest-expected', total: data.length, expected: digestOf(data) });
    const answer = await session.send({ action: 'WRITE', ref: 'digest-expected', offset: 0, data });
    session.close();
    expect(answer.digest).toBe('');
    expect(answer.offset).toBe(data.length);
  });

  it('answers STAT and WRITE with the latest total the stream declared, as containerd does', async () => {
    const data = randomBlob(3000);
    const session = new WriteSession(client);
    expect((await session.send({ action: 'STAT', ref: 'latest-total', total: 1000 })).total).toBe(1000);
    expect((await session.send({ action: 'STAT', ref: 'latest-total', total: data.length })).total).toBe(data.length);
    expect((await session.send({ action: 'WRITE', ref: 'latest-total', offset: 0, data })).total).toBe(data.length);
    session.close();
  });

  it('applies the labels sent with COMMIT', async () => {
    const data = randomBlob(100);
    const { digest } = await writeBlob(client, 'labelled', data, { labels: { 'containerd.io/gc.root': 'x', team: 'a' } });
    const info = await call<object, { info: { labels: Record<string, string> } }>(client, 'Info', { digest });
    expect(info.info.labels).toEqual({ 'containerd.io/gc.root': 'x', team: 'a' });
  });

  it('refuses a first message without a ref with InvalidArgument', async () => {
    const session = new WriteSession(client);
    const err = await failure(session.send({ action: 'STAT', total: 10 }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('first message must have a reference');
  });

  it('answers AlreadyExists when the expected digest is already stored', async () => {
    const data = randomBlob(500);
    const digest = digestOf(data);
    await writeBlob(client, 'exists-a', data, { expected: digest });
    const session = new WriteSession(client);
    const err = await failure(session.send({ action: 'STAT', ref: 'exists-b', total: data.length, expected: digest }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    expect(err.details).toContain(digest);
  });

  it('answers AlreadyExists at COMMIT when another ref stored the same content meanwhile', async () => {
    const data = randomBlob(700);
    const slow = new WriteSession(client);
    await slow.send({ action: 'WRITE', ref: 'race-slow', offset: 0, data });
    await writeBlob(client, 'race-fast', data);
    const err = await failure(slow.send({ action: 'COMMIT', ref: 'race-slow', total: data.length, offset: data.length }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    expect(err.details).toContain(digestOf(data));
  });

  it('answers AlreadyExists at COMMIT, labels left as they were, where another stream stored the digest after this one found it absent', async () => {
    const data = randomBlob(900);
    const digest = digestOf(data);
    const late = new WriteSession(client);
    // the open finds the digest absent, which this stream would otherwise trust for a while
    await late.send({ action: 'STAT', ref: 'absent-late', total: data.length, expected: digest });
    await writeBlob(client, 'absent-early', data, { expected: digest, labels: { first: '1' } });
    await late.send({ action: 'WRITE', ref: 'absent-late', offset: 0, data });
    const err = await failure(late.send({ action: 'COMMIT', ref: 'absent-late', total: data.length, offset: data.length, expected: digest, labels: { second: '2' } }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    const info = await call<object, { info: { labels: Record<string, string> } }>(client, 'Info', { digest });
    expect(info.info.labels).toEqual({ first: '1' });
  });

  it('answers Unavailable, naming the ref, while another stream holds it', async () => {
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref: 'held-ref', total: 10 });
    const second = new WriteSession(client);
    const err = await failure(second.send({ action: 'STAT', ref: 'held-ref', total: 10 }));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('held-ref');
    expect(err.details).toContain('locked');
    first.close();
    await first.ended;
  });

  it('aborts the ingest of a stream whose client has just closed it, as containerd does on finding the digest stored', async () => {
    const data = randomBlob(6 * 1024 * 1024);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'closed-then-aborted', total: data.length });
    for (let off = 0; off < data.length; off += 1 << 20) {
      await session.send({ action: 'WRITE', ref: 'closed-then-aborted', offset: off, data: data.subarray(off, off + (1 << 20)) });
    }
    // containerd's writer Close only ends the sending: its Abort follows without waiting for the stream
    session.close();
    await call(client, 'Abort', { ref: 'closed-then-aborted' });
    await session.ended;
    expect((await failure(call(client, 'Status', { ref: 'closed-then-aborted' }))).code).toBe(status.NOT_FOUND);
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/ingests/closed-then-aborted')).toEqual([]);
  });

  it('resumes a disconnected ingest from its current offset with the same ref', async () => {
    const data = randomBlob(2 * 1024 * 1024 + 17);
    const digest = digestOf(data);
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref: 'resume-me', total: data.length, expected: digest });
    await first.send({ action: 'WRITE', ref: 'resume-me', offset: 0, data: data.subarray(0, 1_000_000) });
    first.cancel();
    await first.ended;

    const st = await waitFor(async () => {
      const s = new WriteSession(client);
      try {
        return { session: s, stat: await s.send({ action: 'STAT', ref: 'resume-me', total: data.length, expected: digest }) };
      } catch (err) {
        if ((err as { code?: number }).code === status.UNAVAILABLE) return undefined; // old stream still letting go
        throw err;
      }
    });
    expect(st.stat.offset).toBe(1_000_000);
    await st.session.send({ action: 'WRITE', ref: 'resume-me', offset: 1_000_000, data: data.subarray(1_000_000) });
    const done = await st.session.send({ action: 'COMMIT', ref: 'resume-me', total: data.length, offset: data.length, expected: digest });
    expect(done.digest).toBe(digest);
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('refuses to continue an ingest with a different total (FailedPrecondition naming both) and keeps it', async () => {
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref: 'other-total', total: 3000 });
    await first.send({ action: 'WRITE', ref: 'other-total', offset: 0, data: randomBlob(1000) });
    first.close();
    await first.ended;

    // the old stream may still be letting go of the ref: retry while it is locked
    const reopen = (total: number) =>
      waitFor(async () => {
        const s = new WriteSession(client);
        try {
          return { stat: await s.send({ action: 'STAT', ref: 'other-total', total }), session: s };
        } catch (err) {
          if ((err as { code?: number }).code === status.UNAVAILABLE) return undefined;
          return { err: err as { code?: number; details?: string }, session: s };
        }
      });
    const refused = await reopen(4000);
    expect(refused.err?.code).toBe(status.FAILED_PRECONDITION);
    expect(refused.err?.details).toContain('provided total 4000 differs from the ingest\'s total 3000');
    const kept = await reopen(3000);
    expect(kept.stat?.offset).toBe(1000);
    kept.session.close();
    await kept.session.ended;
  });

  it('restarts the ingest when a write comes at offset 0', async () => {
    const data = randomBlob(4000);
    const session = new WriteSession(client);
    await session.send({ action: 'WRITE', ref: 'restart', offset: 0, data: randomBlob(1500) });
    const again = await session.send({ action: 'WRITE', ref: 'restart', offset: 0, data });
    expect(again.offset).toBe(data.length);
    const done = await session.send({ action: 'COMMIT', ref: 'restart', total: data.length, offset: data.length });
    expect(done.digest).toBe(digestOf(data));
  });

  it('answers OutOfRange for a write that is not at the current offset', async () => {
    const session = new WriteSession(client);
    await session.send({ action: 'WRITE', ref: 'gap', offset: 0, data: randomBlob(100) });
    const err = await failure(session.send({ action: 'WRITE', ref: 'gap', offset: 250, data: randomBlob(10) }));
    expect(err.code).toBe(status.OUT_OF_RANGE);
    expect(err.details).toContain('write @250 must occur at current offset 100');
  });

  it('answers OutOfRange for data past the declared total', async () => {
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'too-much', total: 50 });
    const err = await failure(session.send({ action: 'WRITE', ref: 'too-much', offset: 0, data: randomBlob(60) }));
    expect(err.code).toBe(status.OUT_OF_RANGE);
    expect(err.details).toContain('total 50');
  });

  it('fails COMMIT with FailedPrecondition on a size mismatch and stores nothing', async () => {
    const before = await listKeys(d.bucket!, 'blobs/');
    const data = randomBlob(1000);
    const session = new WriteSession(client);
    await session.send({ action: 'WRITE', ref: 'short', offset: 0, data });
    const err = await failure(session.send({ action: 'COMMIT', ref: 'short', total: 2000, offset: 1000 }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('failed size validation: 1000 != 2000');
    expect(await listKeys(d.bucket!, 'blobs/')).toEqual(before);
  });

  it('fails COMMIT with FailedPrecondition on a digest mismatch and stores nothing, even past one part', async () => {
    const before = await listKeys(d.bucket!, 'blobs/');
    const data = randomBlob(6 * 1024 * 1024);
    const wrong = digestOf(Buffer.from('something else'));
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'bad-digest', total: data.length, expected: wrong });
    await session.send({ action: 'WRITE', ref: 'bad-digest', offset: 0, data });
    const err = await failure(session.send({ action: 'COMMIT', ref: 'bad-digest', total: data.length, offset: data.length, expected: wrong }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('unexpected commit digest');
    expect(err.details).toContain(wrong);
    expect(await listKeys(d.bucket!, 'blobs/')).toEqual(before);
  });

  it('starts each stream with no expected digest: a later stream commits, without resending, what a failed COMMIT kept', async () => {
    const data = randomBlob(3000);
    const wrong = digestOf(Buffer.from('not these bytes'));
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref: 'expect-once', total: data.length, expected: wrong });
    await first.send({ action: 'WRITE', ref: 'expect-once', offset: 0, data });
    const err = await failure(first.send({ action: 'COMMIT', ref: 'expect-once', total: data.length, offset: data.length }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    await first.ended;
    const second = new WriteSession(client);
    const st = await second.send({ action: 'STAT', ref: 'expect-once' });
    expect(st.offset).toBe(data.length);
    const done = await second.send({ action: 'COMMIT', ref: 'expect-once', total: data.length, offset: data.length });
    expect(done.digest).toBe(digestOf(data));
    second.close();
  });

  it('goes through containerd\'s whole sequence on one ref: wrong digest, wrong size, a correct commit by a later stream, then new content', async () => {
    const data = randomBlob(1000);
    const wrongDigest = digestOf(Buffer.from('not these bytes either'));
    const first = new WriteSession(client);
    await first.send({ action: 'STAT', ref: 'sequence', total: data.length });
    await first.send({ action: 'WRITE', ref: 'sequence', offset: 0, data });
    const byDigest = await failure(first.send({ action: 'COMMIT', ref: 'sequence', total: data.length, offset: data.length, expected: wrongDigest }));
    expect(byDigest.code).toBe(status.FAILED_PRECONDITION);
    expect(byDigest.details).toContain('unexpected commit digest');
    await first.ended;

    const second = new WriteSession(client);
    expect((await second.send({ action: 'STAT', ref: 'sequence', total: data.length })).offset).toBe(data.length);
    const bySize = await failure(second.send({ action: 'COMMIT', ref: 'sequence', total: 2000, offset: data.length }));
    expect(bySize.code).toBe(status.FAILED_PRECONDITION);
    expect(bySize.details).toContain('failed size validation: 1000 != 2000');
    await second.ended;

    // as ctr does: STAT with the right total, then COMMIT without resending a byte
    const third = new WriteSession(client);
    const st = await third.send({ action: 'STAT', ref: 'sequence', total: data.length });
    expect(st).toMatchObject({ offset: data.length, total: data.length });
    const done = await third.send({ action: 'COMMIT', ref: 'sequence', total: data.length, offset: data.length, expected: digestOf(data) });
    expect(done.digest).toBe(digestOf(data));
    third.close();
    await third.ended;

    const other = randomBlob(700);
    const reused = await writeBlob(client, 'sequence', other, { expected: digestOf(other) });
    expect(reused.digest).toBe(digestOf(other));
    expect((await getObject(d.bucket!, `blobs/${digestOf(other)}`)).equals(other)).toBe(true);
  });

  it('refuses content other than the digest a multi-part ingest was opened for, and never stores it', async () => {
    const before = await listKeys(d.bucket!, 'blobs/');
    const promised = digestOf(Buffer.from('what the client said it would send'));
    const data = randomBlob(6 * 1024 * 1024);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'switched', total: data.length, expected: promised });
    await session.send({ action: 'WRITE', ref: 'switched', offset: 0, data });
    // the COMMIT names the real digest, but the upload was started for the promised one
    const err = await failure(session.send({ action: 'COMMIT', ref: 'switched', total: data.length, offset: data.length, expected: digestOf(data) }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(promised);
    // its bytes went with the upload: the ingest starts over, and Status says so
    const st = await call<object, { status: { offset: string | number } }>(client, 'Status', { ref: 'switched' });
    expect(Number(st.status.offset)).toBe(0);
    expect(await listKeys(d.bucket!, 'blobs/')).toEqual(before);
  });

  it('refuses a malformed expected digest with InvalidArgument', async () => {
    const session = new WriteSession(client);
    const err = await failure(session.send({ action: 'STAT', ref: 'bad-expected', expected: 'sha256:XYZ' }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('sha256:XYZ');
  });

  it('refuses at open a total more than S3\'s 10,000 parts hold, naming --part-size', async () => {
    const session = new WriteSession(client);
    const err = await failure(session.send({ action: 'STAT', ref: 'past-10000-parts', total: 200 * 1024 ** 3 }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("a blob of 214748364800 bytes is more than S3's 10,000 parts of");
    expect(err.details).toContain('--part-size');
  });

  it('refuses a negative write offset with InvalidArgument', async () => {
    const session = new WriteSession(client);
    const err = await failure(session.send({ action: 'WRITE', ref: 'negative', offset: -5, data: randomBlob(5) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });

  it('requires a namespace: FailedPrecondition without the header', async () => {
    const session = new WriteSession(client, new (await import('@grpc/grpc-js')).Metadata());
    const err = await failure(session.send({ action: 'STAT', ref: 'no-ns' }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('namespace is required');
  });

  it('takes the namespace from BuildKit\'s buildkit-attachable-store-id header when there is no containerd-namespace', async () => {
    const { Metadata } = await import('@grpc/grpc-js');
    const store = new Metadata();
    store.set('buildkit-attachable-store-id', 'local:/tmp/cache-dir');
    const data = randomBlob(64);
    const { digest } = await writeBlob(client, 'bk-session', data, { metadata: store, labels: { from: 'buildkit' } });
    const seen = await call<object, { info: { labels: Record<string, string> } }>(client, 'Info', { digest }, store);
    expect(seen.info.labels).toEqual({ from: 'buildkit' });
    // a separate namespace: its labels do not show through containerd's default one
    const other = await call<object, { info: { labels: Record<string, string> } }>(client, 'Info', { digest }, ns('default'));
    expect(other.info.labels).toEqual({});
  });

  it('refuses an invalid namespace with InvalidArgument', async () => {
    const err = await failure(call(client, 'Info', { digest: digestOf('x') }, ns('bad/namespace')));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('bad/namespace');
  });
});

describe.each([
  { flags: {}, signed: false },
  { flags: { s3SignPayloads: true }, signed: true },
])('Write on S3 (loopback) with $flags', ({ flags, signed }) => {
  let d: TestDaemon;
  /** The payload hash each upload of a blob's bytes was signed with. */
  const signedWith: string[] = [];

  // The tests' S3 is on loopback: uploads go UNSIGNED-PAYLOAD there unless --s3-sign-payloads,
  // when the store checks each body's signed hash against the bytes it received.
  beforeAll(async () => {
    d = await startDaemon({
      flags: { partSize: '5MiB', ...flags },
      store: (config: Config) => {
        const client = createS3Client(config.s3!);
        client.middlewareStack.add(
          (next, context) => async (args) => {
            const { headers } = args.request as { headers: Record<string, string> };
            if (['PutObjectCommand', 'UploadPartCommand'].includes(context.commandName ?? '') && (args.input as { Key?: string }).Key?.startsWith('blobs/')) {
              signedWith.push(headers['x-amz-content-sha256'] ?? '(none)');
            }
            return next(args);
          },
          { step: 'finalizeRequest', name: 'payloadHashForTest', priority: 'low' },
        );
        return new S3BlobStore(config.s3!, client);
      },
    });
  });
  afterAll(async () => d.stop());

  it(`commits a blob in one PUT and one in parts, their bodies signed ${signed ? 'with the hash of their bytes' : 'UNSIGNED-PAYLOAD'}, byte for byte`, async () => {
    for (const data of [randomBlob(300_000), randomBlob(11 * 1024 * 1024 + 7)]) {
      const digest = digestOf(data);
      expect((await writeBlob(d.content(), `signed-${data.length}`, data, { expected: digest })).digest).toBe(digest);
      expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
    }
    // one PUT, three parts
    expect(signedWith).toHaveLength(4);
    for (const hash of signedWith) expect(hash).toMatch(signed ? /^[0-9a-f]{64}$/ : /^UNSIGNED-PAYLOAD$/);
  });
});

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
