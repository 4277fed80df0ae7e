import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import type { ReadSlotLimits } from '../src/blobstore/s3/read-slots.js';
import { status } from '@grpc/grpc-js';
import { constants } from 'node:http2';
import type { S3StoreOptions } from '../src/blobstore/s3/options.js';
import { resolveConfig, type Config } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { isStoreError } from '../src/errors.js';
import { collect, failure, newBucket, ns, putObject, randomBlob, s3, startDaemon, until, useS3Credentials } from './support/harness.js';
import { countGets } from './support/s3-requests.js';
import { moreStalledReads, stalledRead } from './support/raw-grpc.js';

const MiB = 1024 * 1024;

/** A Read whose client took its first piece and nothing since. */
type IdleRead = AsyncIterator<Buffer>;

describe('S3 responses held by Reads', () => {
  const data = randomBlob(4 * MiB);
  const digest = digestOf(data);
  let bucket: string;
  let store: S3BlobStore | undefined;
  let gets: string[];
  let unreachable: boolean[];

  beforeAll(async () => {
    useS3Credentials();
    bucket = await newBucket();
    await putObject(bucket, `blobs/${digest}`, data);
  });
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  function open(options: S3StoreOptions | Partial<ReadSlotLimits> = {}): S3BlobStore {
    const base = 'bucket' in options ? options : { ...resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region }, {}).s3!, readSlots: options };
    const client = createS3Client(base);
    gets = countGets(client);
    store = new S3BlobStore(base, client);
    unreachable = [];
    store.onReachability((up) => unreachable.push(!up));
    return store;
  }

  const read = (offset: number, length: number, cancel?: AbortSignal) =>
    store!.readBlob(digest, offset, length, { size: data.length, ...(cancel ? { cancel: { signal: cancel } } : {}) });

  async function readAll(offset: number, length: number): Promise<Buffer> {
    const pieces: Buffer[] = [];
    for await (const piece of await read(offset, length)) pieces.push(piece);
    return Buffer.concat(pieces);
  }

  /** `count` Reads to the end, from distinct offsets, each left after its first piece. */
  async function idleReads(count: number): Promise<{ reading: IdleRead; offset: number; first: Buffer }[]> {
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const offset = i * 1024;
        // reads to the end, more than any read-ahead holds: streams
        const reading = ((await read(offset, data.length - offset)) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        return { reading, offset, first: (await reading.next()).value as Buffer };
      }),
    );
  }

  it('serves a Read while as many Reads as there are sockets hold responses their clients take nothing from, never as S3 unreachable', async () => {
    open();
    const idle = await idleReads(128);
    try {
      const started = performance.now();
      expect((await readAll(MiB, MiB)).equals(data.subarray(MiB, 2 * MiB))).toBe(true);
      // within the idle period (2 s) and a sweep, well short of the 3 x 10 s a socket's wait takes
      expect(performance.now() - started).toBeLessThan(20_000);
      expect(unreachable).toEqual([]);
    } finally {
      await Promise.all(idle.map(({ reading }) => reading.return?.()));
    }
  }, 60_000);

  it('continues a Read that gave its response up where it stopped, byte for byte, once its client takes again', async () => {
    open({ max: 1, idleMs: 100 });
    const [idle] = await idleReads(1);
    expect((await readAll(MiB, 1000)).equals(data.subarray(MiB, MiB + 1000))).toBe(true);
    const pieces = [idle!.first];
    for (let next = await idle!.reading.next(); !next.done; next = await idle!.reading.next()) pieces.push(next.value);
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
    // one GET for the idle Read, one for the other, one to continue
    expect(gets.length).toBe(3);
  });

  it('makes a Read whose client takes a piece now and then give its response up after its turn to a Read that waits, each byte for byte', async () => {
    open({ max: 1, waitMs: 3_000, idleMs: 60_000, turnMs: 300 });
    const slow = ((await read(0, data.length)) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const pieces: Buffer[] = [];
    let waitedFor: Buffer | undefined;
    const other = readAll(MiB, MiB).then((b) => (waitedFor = b));
    // taking a piece every 100 ms, never idle for idleMs, for longer than the other may wait
    const started = performance.now();
    while (performance.now() - started < 5_000) {
      const next = await slow.next();
      if (next.done) break;
      pieces.push(next.value);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(pieces.length).toBeGreaterThan(20);
    await other;
    expect(waitedFor!.equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    for (let next = await slow.next(); !next.done; next = await slow.next()) pieces.push(next.value);
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
  }, 30_000);

  it('closes the oldest parked response for a Read that waits, at once', async () => {
    open({ max: 2, idleMs: 60_000 });
    // two Reads of the first MiB from two offsets, each parked for the next Read
    expect((await readAll(0, MiB)).equals(data.subarray(0, MiB))).toBe(true);
    expect((await readAll(2 * MiB, MiB)).equals(data.subarray(2 * MiB, 3 * MiB))).toBe(true);
    const started = performance.now();
    // to the end: closed after, not parked
    const end = data.length - 1000;
    expect((await readAll(end, 1000)).equals(data.subarray(end))).toBe(true);
    // well short of the 30 s a Read waits for a slot nobody gives up
    expect(performance.now() - started).toBeLessThan(10_000);
    // the Read that continues the oldest parked one needs a GET of its own: it was closed
    const before = gets.length;
    expect((await readAll(MiB, MiB)).equals(data.subarray(MiB, 2 * MiB))).toBe(true);
    expect(gets.length).toBe(before + 1);
    // the younger one is still parked
    expect((await readAll(3 * MiB, MiB)).equals(data.subarray(3 * MiB))).toBe(true);
    expect(gets.length).toBe(before + 1);
  });

  it('fails a Read that waited past its bound with ResourceExhausted naming the limit, not as S3 unreachable', async () => {
    open({ max: 2, waitMs: 300, idleMs: 60_000 });
    const idle = await idleReads(2);
    try {
      const err = await readAll(MiB, 10).catch((e: unknown) => e);
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect((err as Error).message).toMatch(/^GET blobs\/sha256:[0-9a-f]{64}: waited 0s for one of the 2 S3 responses Reads may hold at once/);
      expect(unreachable).toEqual([]);
    } finally {
      await Promise.all(idle.map(({ reading }) => reading.return?.()));
    }
  });

  it('lets a Read whose client cancels while it waits leave at once, CANCELLED', async () => {
    open({ max: 1, waitMs: 30_000, idleMs: 60_000 });
    const idle = await idleReads(1);
    try {
      const controller = new AbortController();
      const waiting = read(MiB, 10, controller.signal).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 100));
      const started = performance.now();
      controller.abort();
      expect(isStoreError(await waiting, 'cancelled')).toBe(true);
      // well short of the 30 s wait it would otherwise end with
      expect(performance.now() - started).toBeLessThan(10_000);
    } finally {
      await Promise.all(idle.map(({ reading }) => reading.return?.()));
    }
  });

  it("gives a response that comes free to another client's Read before the many Reads one client asked for first", async () => {
    const large = randomBlob(24 * MiB);
    await putObject(bucket, `blobs/${digestOf(large)}`, large);
    const d = await startDaemon({
      bucket,
      store: (config: Config) => open({ ...config.s3!, readSlots: { max: 2, waitMs: 10_000, idleMs: 60_000, turnMs: 0 } }),
    });
    // one client: two Reads holding both responses (their blob is more than what is sent ahead), two waiting
    const first = stalledRead(d.socket, digestOf(large));
    const streams = [first.stream, ...moreStalledReads(first, digestOf(large), 3)];
    try {
      // the daemon takes the four up in an order of its own: those holding a response are sending
      const sending = () => streams.filter((stream) => stream.readableLength > 0);
      await until(() => sending().length === 2, 10_000, 50);
      await new Promise((r) => setTimeout(r, 300));
      expect(sending().length).toBe(2);
      let served = false;
      const other = collect<{ data: Buffer }>(d.content().Read({ digest, offset: 0, size: 10 }, ns())).then((pieces) => {
        served = true;
        return Buffer.concat(pieces.map((piece) => piece.data));
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(served).toBe(false);
      const [freed] = sending();
      freed!.close(constants.NGHTTP2_CANCEL);
      expect(await other).toEqual(data.subarray(0, 10));
      // the first client's waiting Reads are still waiting: their turn comes as the next frees
      const waiting = streams.filter((stream) => stream !== freed && stream.readableLength === 0);
      expect(waiting.length).toBe(2);
      expect(waiting.every((stream) => !stream.closed)).toBe(true);
    } finally {
      first.session.destroy();
      await d.stop();
      store = undefined;
    }
  });

  it('reads 128 KiB ahead of a Read at an offset of its own, and further as Reads continue where the last stopped', async () => {
    open();
    const KiB = 1024;
    const readAhead = () => store!.usage().readAhead.inUse;
    const readAt = async (offset: number) => expect((await readAll(offset, 32 * KiB)).equals(data.subarray(offset, offset + 32 * KiB))).toBe(true);
    await readAt(MiB);
    // it stops past the bound by at most the last piece the socket gave (up to 64 KiB)
    await until(() => readAhead() >= 128 * KiB, 5_000, 20);
    await new Promise((r) => setTimeout(r, 200));
    expect(readAhead()).toBeLessThanOrEqual(192 * KiB);
    for (let i = 1; i <= 3; i++) await readAt(MiB + i * 32 * KiB);
    await until(() => readAhead() >= 1024 * KiB - 128 * KiB, 5_000, 20);
    expect(gets.filter((key) => key.startsWith('blobs/')).length).toBe(1);
  });

  it('answers a Read over gRPC that waited past its bound with RESOURCE_EXHAUSTED', async () => {
    const d = await startDaemon({
      bucket,
      store: (config: Config) => open({ ...config.s3!, readSlots: { max: 1, waitMs: 300, idleMs: 60_000 } }),
    });
    const idle = await idleReads(1);
    try {
      const err = await failure(collect(d.content().Read({ digest, offset: MiB, size: 10 }, ns())));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain('1 S3 responses Reads may hold at once');
    } finally {
      await Promise.all(idle.map(({ reading }) => reading.return?.()));
      await d.stop();
      store = undefined;
    }
  });
});
