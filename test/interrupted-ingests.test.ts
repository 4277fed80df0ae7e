import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/blobstore/types.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { digestOf } from '../src/digest.js';
import type { ListStatusesResponse__Output } from '../src/generated/containerd/services/content/v1/ListStatusesResponse.js';
import type { StatusResponse__Output } from '../src/generated/containerd/services/content/v1/StatusResponse.js';
import { call, collect, failure, ns, randomBlob, startDaemon, type TestDaemon, until, writeBlob, WriteSession } from './support/harness.js';
import { stalledRead } from './support/raw-grpc.js';

const MiB = 1024 * 1024;

/** Interrupted ingests (a Ctrl-C'd ctr, a builder that died) hold no memory, yet keep their bytes. */
describe('interrupted ingests', () => {
  let d: TestDaemon;
  let store: BlobStore | undefined;

  beforeAll(async () => {
    // a budget of four parts: the old behaviour ran out after four interrupted ingests
    d = await startDaemon({
      flags: { partSize: '5MiB', maxBuffer: '20MiB' },
      // the daemon's own store, kept here to read its buffer usage
      store: (config) => (store = new S3BlobStore(config.s3!)),
    });
  });
  afterAll(async () => d?.stop());

  it('gives back every buffer of 40 interrupted ingests, lets 16 new ones complete, and resumes each interrupted one from its offset', async () => {
    const interrupted = Array.from({ length: 40 }, (_, i) => ({ ref: `cut-${i}`, data: randomBlob(6 * MiB + i) }));
    const acknowledged = 3 * MiB + 17;
    for (const { ref, data } of interrupted) {
      const session = new WriteSession(d.content());
      await session.send({ action: 'STAT', ref, total: data.length, expected: digestOf(data) });
      const ack = await session.send({ action: 'WRITE', ref, offset: 0, data: data.subarray(0, acknowledged) });
      expect(ack.offset).toBe(acknowledged);
      session.cancel(); // Ctrl-C
      await session.ended;
    }
    // let the daemon see every cancel and put each ingest aside
    await until(async () => {
      const st = await Promise.all(interrupted.map(({ ref }) => call<object, StatusResponse__Output>(d.content(), 'Status', { ref }).catch(() => undefined)));
      return st.every((s) => s?.status?.offset === acknowledged);
    });
    // none of them holds buffer or budget any more
    await until(async () => store!.usage().uploadBuffer.inUse === 0);

    const fresh = Array.from({ length: 16 }, (_, i) => randomBlob(7 * MiB + i));
    const written = await Promise.all(fresh.map((data, i) => writeBlob(d.content(), `new-${i}`, data, { expected: digestOf(data) })));
    expect(written.map((w) => w.digest)).toEqual(fresh.map((f) => digestOf(f)));

    for (const { ref, data } of interrupted) {
      const session = new WriteSession(d.content());
      const st = await session.send({ action: 'STAT', ref, total: data.length, expected: digestOf(data) });
      expect(st.offset).toBe(acknowledged);
      await session.send({ action: 'WRITE', ref, offset: acknowledged, data: data.subarray(acknowledged) });
      const done = await session.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected: digestOf(data) });
      expect(done.digest).toBe(digestOf(data));
      session.close();
      await session.ended;
    }
  }, 120_000);
});

/** The 4,096 interrupted ingests a daemon keeps are shared between namespaces. */
describe('interrupted ingests past what a daemon keeps', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    // Node's own hash: thousands of saveable ones would only cost time here
    d = await startDaemon({ flags: { noCrashResume: true } });
  });
  afterAll(async () => d?.stop());

  /**
   * Opens `ref`, has 10 bytes acknowledged, and ends the stream without a COMMIT (no bytes reach
   * the bucket). No total is declared, so the open waits for the bucket's answer on a record of
   * the ref, and the flood goes no faster than S3 answers. Not a cancel: thousands of those would
   * have Node's HTTP/2 server close the connection, as its protection from rapid resets must.
   */
  const interrupt = async (namespace: string, ref: string) => {
    const session = new WriteSession(d.content(), ns(namespace));
    await session.send({ action: 'WRITE', ref, offset: 0, data: randomBlob(10) });
    session.close();
    await session.ended;
  };
  const statuses = async (namespace: string) =>
    (await call<object, ListStatusesResponse__Output>(d.content(), 'ListStatuses', { filters: [] }, ns(namespace))).statuses;

  it("let go of the flooding namespace's own oldest, never those of a namespace within its share", async () => {
    for (const ref of ['quiet-0', 'quiet-1', 'quiet-2']) await interrupt('quiet', ref);
    const flood = Array.from({ length: 4100 }, (_, i) => `flood-${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < flood.length) await interrupt('flood', flood[next++]!);
      }),
    );
    // once the daemon has put every one aside, it holds its bound of 4,096 again
    await until(async () => (await statuses('quiet')).length + (await statuses('flood')).length <= 4096, 60_000, 500);
    const quiet = await statuses('quiet');
    expect(quiet.map((s) => [s.ref, Number(s.offset)]).sort()).toEqual([
      ['quiet-0', 10],
      ['quiet-1', 10],
      ['quiet-2', 10],
    ]);
    const kept = new Set((await statuses('flood')).map((s) => s.ref));
    expect(kept.size).toBe(4093);
    // the oldest went: the last written are all kept
    expect(flood.slice(-100).filter((ref) => !kept.has(ref))).toEqual([]);
  }, 300_000);
});

describe('stream limits', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs', flags: { maxStreams: '2', streamIdleTimeout: '1s' } });
  });
  afterAll(async () => d?.stop());

  it('ends a Write stream idle past --stream-idle-timeout with DeadlineExceeded, keeping its ingest', async () => {
    const data = randomBlob(1000);
    const session = new WriteSession(d.content());
    await session.send({ action: 'WRITE', ref: 'idle', offset: 0, data: data.subarray(0, 400) });
    await session.ended;
    const err = await failure(session.send({ action: 'WRITE', ref: 'idle', offset: 400, data: data.subarray(400) }));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(err.details).toContain('--stream-idle-timeout');
    const st = await call<object, StatusResponse__Output>(d.content(), 'Status', { ref: 'idle' });
    expect(st.status?.offset).toBe(400);
  });

  it('ends a Read stream whose client takes nothing past --stream-idle-timeout, giving its place back', async () => {
    const data = randomBlob(8 * MiB);
    const { digest } = await writeBlob(d.content(), 'read-stall', data);
    // A client that asks and then reads nothing from its connection: HTTP/2 flow control stops
    // the daemon after a window's worth, as with a stalled process at the other end of a socket.
    const { session, closed: reset } = stalledRead(d.socket, digest);
    // reset (CANCEL): a status could not pass the messages it has not taken
    expect(await reset).toBe(8);
    // both places are free again: the stalled Read was ended
    const open = [new WriteSession(d.content()), new WriteSession(d.content())];
    await Promise.all(open.map((s, i) => s.send({ action: 'STAT', ref: `after-stall-${i}` })));
    for (const s of open) s.close();
    await Promise.all(open.map((s) => s.ended));
    session.destroy();
  });

  it('refuses a stream past --max-streams with ResourceExhausted naming the limit, and takes one once another ended', async () => {
    const open = [new WriteSession(d.content()), new WriteSession(d.content())];
    await Promise.all(open.map((s, i) => s.send({ action: 'STAT', ref: `held-${i}` })));
    const third = new WriteSession(d.content());
    const err = await failure(third.send({ action: 'STAT', ref: 'third' }));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain('--max-streams 2');
    open[0]!.close();
    await open[0]!.ended;
    const again = new WriteSession(d.content());
    expect((await again.send({ action: 'STAT', ref: 'third' })).action).toBe('STAT');
    again.close();
    open[1]!.close();
    await Promise.all([again.ended, open[1]!.ended]);
  });

  it('counts a List stream among --max-streams, as Write and Read', async () => {
    const open = [new WriteSession(d.content()), new WriteSession(d.content())];
    await Promise.all(open.map((s, i) => s.send({ action: 'STAT', ref: `list-held-${i}` })));
    const err = await failure(collect(d.content().List({ filters: [] }, ns())));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain('--max-streams 2');
    open[0]!.close();
    await open[0]!.ended;
    await expect(collect(d.content().List({ filters: [] }, ns()))).resolves.toBeInstanceOf(Array);
    open[1]!.close();
    await open[1]!.ended;
  });
});
