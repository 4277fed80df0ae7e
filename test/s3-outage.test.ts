import { execFileSync, spawnSync } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { digestOf } from '../src/digest.js';
import { call, failure, randomBlob, s3, startDaemon, tempDir, type TestDaemon, until, WriteSession } from './support/harness.js';

const SCRIPT = new URL('../scripts/swift-s3.sh', import.meta.url).pathname;

/** The test stops and starts an S3 server of its own: a Swift, which needs python3-swift. */
const swiftInstalled = spawnSync('/usr/bin/python3', ['-c', 'import swift']).status === 0;
if (!swiftInstalled) console.warn('s3-outage tests skipped: python3-swift is not installed (bash scripts/test-deps.sh installs it)');

/**
 * S3 going away and coming back, with a Swift of this test's own (the shared one must stay up).
 * Skipped, with this reason, only where python3-swift is not installed (scripts/test-deps.sh).
 */
describe.runIf(swiftInstalled)('an S3 outage', () => {
  const dir = tempDir('s3cs-outage-');
  let endpoint = '';
  let d: TestDaemon;
  let store: S3BlobStore;
  const swift = (...args: string[]) => execFileSync('bash', [SCRIPT, ...args], { encoding: 'utf8' });
  const healthOf = async () => ((await call(d.health(), 'Check', { service: '' })) as { status: string }).status;

  beforeAll(async () => {
    endpoint = /S3_TEST_ENDPOINT=(\S+)/.exec(swift('start', dir))![1]!;
    const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: s3().accessKey, secretAccessKey: s3().secretKey } });
    await client.send(new CreateBucketCommand({ Bucket: 'outage' }));
    client.destroy();
    d = await startDaemon({
      bucket: 'outage',
      flags: { endpointUrl: endpoint, partSize: '5MiB', s3MaxAttempts: '2' },
      store: (config) => (store = new S3BlobStore(config.s3!)),
    });
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    swift('stop', dir);
  });

  it('answers Unavailable naming the endpoint, reports NOT_SERVING, and resumes the same ingest once S3 is back', async () => {
    const data = randomBlob(16 * 1024 * 1024);
    const digest = digestOf(data);
    const first = new WriteSession(d.content());
    await first.send({ action: 'STAT', ref: 'through-outage', total: data.length, expected: digest });
    await first.send({ action: 'WRITE', ref: 'through-outage', offset: 0, data: data.subarray(0, 6 * 1024 * 1024) });

    await new Promise((r) => setTimeout(r, 1_500)); // the first part reaches S3
    swift('stop', dir);
    // the next parts cannot be stored: the stream learns it at a later request, COMMIT at the latest
    const err = await failure(
      (async () => {
        const MiB = 1024 * 1024;
        for (let off = 6 * MiB; off < data.length; off += MiB) {
          await first.send({ action: 'WRITE', ref: 'through-outage', offset: off, data: data.subarray(off, off + MiB) });
        }
        return first.send({ action: 'COMMIT', ref: 'through-outage', total: data.length, offset: data.length, expected: digest });
      })(),
    );
    expect({ code: err.code, details: err.details }).toMatchObject({ code: status.UNAVAILABLE });
    expect(err.details).toContain(endpoint);
    await until(async () => (await healthOf()) === 'NOT_SERVING');
    expect(await failure(call(d.content(), 'Info', { digest: digestOf('while-down') }))).toMatchObject({ code: status.UNAVAILABLE });
    // the stream is gone: its refused parts wait on disk, not in the upload budget
    await until(async () => store.usage().uploadBuffer.inUse === 0);

    swift('start', dir);
    await until(async () => (await healthOf()) === 'SERVING');

    const again = new WriteSession(d.content());
    const st = await again.send({ action: 'STAT', ref: 'through-outage', total: data.length, expected: digest });
    expect(st.offset).toBeGreaterThanOrEqual(6 * 1024 * 1024);
    await again.send({ action: 'WRITE', ref: 'through-outage', offset: st.offset, data: data.subarray(st.offset) });
    const done = await again.send({ action: 'COMMIT', ref: 'through-outage', total: data.length, offset: data.length, expected: digest });
    expect(done.digest).toBe(digest);
    const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: s3().accessKey, secretAccessKey: s3().secretKey } });
    const out = await client.send(new GetObjectCommand({ Bucket: 'outage', Key: `blobs/${digest}` }));
    expect(Buffer.from(await out.Body!.transformToByteArray()).equals(data)).toBe(true);
    client.destroy();
  }, 120_000);

  it('tells a Watch caller SERVING, then NOT_SERVING while S3 is down, then SERVING once it is back', async () => {
    const seen: string[] = [];
    const watch = d.health().Watch({ service: '' });
    watch.on('data', (r: { status: string }) => seen.push(r.status));
    watch.on('error', () => undefined); // the cancel at the end
    await until(async () => seen.length >= 1);

    swift('stop', dir);
    // the daemon learns that S3 is gone at its next call to it
    expect(await failure(call(d.content(), 'Info', { digest: digestOf('while-watched') }))).toMatchObject({ code: status.UNAVAILABLE });
    await until(async () => seen.length >= 2);

    swift('start', dir);
    await until(async () => seen.length >= 3);
    expect(seen).toEqual(['SERVING', 'NOT_SERVING', 'SERVING']);
    watch.cancel();
  }, 120_000);
});
