import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { call, collect, failure, ns, randomBlob, writeBlob, type TestDaemon } from './support/harness.js';
import { daemonLoggingRequests, kindOf, rounds, type RequestLog, type SentRequest } from './support/s3-requests.js';

const KiB = 1024;
/** What `ctr content get` asks for in each Read call. */
const CTR_READ = 32 * KiB;

/**
 * A namespace that deleted its hold of a blob still reads it while something else needs the
 * bytes: what that costs in S3 requests, counted on the daemon's own client, and that the
 * answers it keeps do not hide a change made through this daemon.
 */
describe('Info and Read in a namespace that deleted its hold of a blob', () => {
  let d: TestDaemon;
  let log: RequestLog;
  let client: ContentClient;

  beforeAll(async () => {
    ({ d, log } = await daemonLoggingRequests());
    client = d.content();
  });
  afterAll(async () => d.stop());

  const info = (digest: string, namespace: string) => call(client, 'Info', { digest }, ns(namespace));
  const read = async (digest: string, namespace: string, offset = 0, size = 0) =>
    Buffer.concat((await collect<ReadContentResponse__Output>(client.Read({ digest, offset, size }, ns(namespace)))).map((c) => c.data));

  /** `data` held in `holder`, and held then deleted in `deleter`; its digest. */
  async function deletedWhileHeldElsewhere(data: Buffer, holder: string, deleter: string): Promise<string> {
    const { digest } = await writeBlob(client, `${holder}-w`, data, { metadata: ns(holder) });
    // stored already: AlreadyExists, which takes the hold
    await writeBlob(client, `${deleter}-w`, data, { expected: digest, metadata: ns(deleter) }).catch(() => undefined);
    await call(client, 'Delete', { digest }, ns(deleter));
    await log.quiet();
    return digest;
  }

  /** What the daemon sent while `action` ran. */
  async function sentDuring(action: () => Promise<void>): Promise<SentRequest[]> {
    const from = log.sent.length;
    await action();
    await log.quiet();
    return log.sent.slice(from);
  }

  const namespaceListings = (sent: SentRequest[]) => sent.filter((r) => r.op === 'ListObjectsV2' && /\/v1\/ns\/$/.test(r.key));
  /** Reads of other namespaces' holds of `digest`. */
  const holdReads = (sent: SentRequest[], digest: string, except: string) =>
    sent.filter((r) => r.op === 'GetObject' && kindOf(r.key) === 'hold' && r.key.endsWith(digest) && !r.key.includes(`/ns/${except}/`));

  it('asks the bucket about the other namespaces once for a blob read 32 KiB a call, not at every call', async () => {
    const data = randomBlob(20 * CTR_READ);
    const digest = await deletedWhileHeldElsewhere(data, 'keeps', 'drops');
    const sent = await sentDuring(async () => {
      for (let offset = 0; offset < data.length; offset += CTR_READ) {
        expect((await read(digest, 'drops', offset, CTR_READ)).equals(data.subarray(offset, offset + CTR_READ))).toBe(true);
      }
      for (let i = 0; i < 5; i++) expect(await info(digest, 'drops')).toMatchObject({ info: { digest } });
    });
    expect(namespaceListings(sent)).toHaveLength(1);
    expect(holdReads(sent, digest, 'drops')).toHaveLength(1);
  });

  it('reads the other namespaces\' holds side by side, not one round trip a namespace', async () => {
    // the holder lists last, after 16 namespaces that hold something else
    const others = Array.from({ length: 16 }, (_, i) => `other-${String(i).padStart(2, '0')}`);
    await Promise.all(others.map((other) => writeBlob(client, `${other}-w`, randomBlob(100), { metadata: ns(other) })));
    const digest = await deletedWhileHeldElsewhere(randomBlob(300), 'zz-holder', 'drops-many');
    const sent = await sentDuring(async () => {
      expect(await info(digest, 'drops-many')).toMatchObject({ info: { digest } });
    });
    const reads = holdReads(sent, digest, 'drops-many');
    // every other namespace's (the holder's last), 8 at a time: a few rounds, not one each
    expect(reads.length).toBeGreaterThanOrEqual(17);
    expect(rounds(reads)).toBeLessThanOrEqual(5);
  });

  it('finds a hold written later in another namespace through this daemon at once (a no is not kept)', async () => {
    const data = randomBlob(400);
    const { digest } = await writeBlob(client, 'alone-w', data, { metadata: ns('alone') });
    await call(client, 'Delete', { digest }, ns('alone'));
    expect((await failure(info(digest, 'alone'))).code).toBe(status.NOT_FOUND);
    await writeBlob(client, 'late-w', data, { expected: digest, metadata: ns('late') }).catch(() => undefined);
    expect(await info(digest, 'alone')).toMatchObject({ info: { digest } });
    expect((await read(digest, 'alone')).equals(data)).toBe(true);
  });

  it('answers NotFound at once once the other namespace deletes its hold through this daemon too (a yes kept is dropped)', async () => {
    const data = randomBlob(500);
    const digest = await deletedWhileHeldElsewhere(data, 'last-holder', 'first-out');
    expect((await read(digest, 'first-out')).equals(data)).toBe(true);
    await call(client, 'Delete', { digest }, ns('last-holder'));
    expect((await failure(info(digest, 'first-out'))).code).toBe(status.NOT_FOUND);
    expect((await failure(read(digest, 'first-out'))).code).toBe(status.NOT_FOUND);
  });
});
