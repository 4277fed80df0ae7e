import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { ReadTier } from '../src/blobstore/tier/store.js';
import type { BlobStore } from '../src/blobstore/types.js';
import { resolveConfig, type Config, type Flags } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { Collector } from '../src/gc/collector.js';
import { collectorSourcesFor } from '../src/gc/sources.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { LeaseStore } from '../src/leases/store.js';
import { cacheLookups } from '../src/metrics/registry.js';
import { openBlobStore } from '../src/server.js';
import {
  call,
  collect,
  collectUntil,
  failure,
  ns,
  putObject,
  quietLogger,
  randomBlob,
  rawS3,
  s3,
  startDaemon,
  tempDir,
  until,
  useS3Credentials,
  writeBlob,
  type TestDaemon,
} from './support/harness.js';
import { countGets } from './support/s3-requests.js';

const MiB = 1024 * 1024;


interface TierDaemon {
  d: TestDaemon;
  dir: string;
  /** GETs of the blob's object the daemon sent so far. */
  getsOf(digest: string): number;
  /** The blob's tier file is in place and the tier serves it (its fill logged as kept). */
  kept(digest: string): boolean;
  /** A file of the blob is in the tier's directory, whether or not the tier counts it kept yet. */
  onDisk(digest: string): boolean;
  /** The daemon's own store, the tier (only when built by the test). */
  tier: ReadTier | undefined;
}

/**
 * A daemon on a fresh bucket whose S3 client counts GETs. By default the tier comes from the
 * --cache-dir flags as `serve` makes it; `confirmMs` builds it here, with that period (and `maxBytes`, 64 MiB unless given).
 */
async function tierDaemon(options: { flags?: Flags; dir?: string; bucket?: string; confirmMs?: number; maxBytes?: number } = {}): Promise<TierDaemon> {
  const dir = options.dir ?? tempDir('s3cs-tier-');
  let gets: string[] = [];
  let tier: ReadTier | undefined;
  // the tier a test builds itself logs here (the daemon's own logs into d.logs)
  const tierLogs: Record<string, unknown>[] = [];
  const d = await startDaemon({
    ...(options.bucket ? { bucket: options.bucket } : {}),
    flags: options.confirmMs === undefined ? { cacheDir: dir, ...options.flags } : {},
    store: async (config: Config): Promise<BlobStore> => {
      const client = createS3Client(config.s3!);
      gets = countGets(client);
      const s3store = new S3BlobStore(config.s3!, client);
      if (options.confirmMs === undefined) return s3store;
      const logger = pino({ level: 'debug' }, { write: (line: string) => void tierLogs.push(JSON.parse(line) as Record<string, unknown>) });
      tier = await ReadTier.open(s3store, { dir, maxBytes: options.maxBytes ?? 64 * MiB, confirmMs: options.confirmMs, logger });
      return tier;
    },
  });
  const files = () => {
    try {
      return readdirSync(join(dir, 'blobs', 'sha256'));
    } catch {
      return [];
    }
  };
  return {
    d,
    dir,
    tier,
    getsOf: (digest) => gets.filter((key) => key === `blobs/${digest}`).length,
    onDisk: (digest) => files().includes(digest.slice('sha256:'.length)),
    // the file is renamed into place before the tier counts it kept: a read in between is a miss
    kept: (digest) =>
      files().includes(digest.slice('sha256:'.length)) &&
      [...d.logs, ...tierLogs].some((l) => l.digest === digest && l.outcome === 'kept'),
  };
}

async function readAll(client: ContentClient, digest: string, options: { offset?: number; size?: number; namespace?: string } = {}): Promise<Buffer> {
  const chunks = await collect<ReadContentResponse__Output>(
    client.Read({ digest, offset: options.offset ?? 0, size: options.size ?? 0 }, ns(options.namespace)),
  );
  return Buffer.concat(chunks.map((c) => c.data));
}

async function tierLookups(result: 'hit' | 'miss'): Promise<number> {
  const { values } = await cacheLookups.get();
  return values.find((v) => v.labels.cache === 'tier' && v.labels.result === result)?.value ?? 0;
}

/** How the daemon logged the end of each fill of the blob (debug lines; warnings for corrupt ones). */
function fillOutcomes(d: TestDaemon, digest: string): unknown[] {
  return d.logs.filter((l) => l.digest === digest && String(l.msg).startsWith('read tier')).map((l) => l.outcome ?? l.msg);
}

describe('a local read tier (--cache-dir)', () => {
  let t: TierDaemon;
  let client: ContentClient;

  beforeAll(async () => {
    t = await tierDaemon();
    client = t.d.content();
  });
  afterAll(async () => t?.d.stop());

  it('serves a blob read a second time from disk, without a GET, byte for byte, and counts a miss then a hit', async () => {
    const data = randomBlob(3 * MiB + 123);
    const { digest } = await writeBlob(client, 'twice', data);
    const [hits, misses] = [await tierLookups('hit'), await tierLookups('miss')];
    expect((await readAll(client, digest)).equals(data)).toBe(true);
    expect(t.getsOf(digest)).toBe(1);
    await until(() => t.kept(digest));
    expect((await readAll(client, digest)).equals(data)).toBe(true);
    expect(t.getsOf(digest)).toBe(1);
    expect([(await tierLookups('hit')) - hits, (await tierLookups('miss')) - misses]).toEqual([1, 1]);
  });

  it('answers ranged reads from the kept blob', async () => {
    const data = randomBlob(3 * MiB + 4_321);
    const { digest } = await writeBlob(client, 'ranges', data);
    await readAll(client, digest);
    await until(() => t.kept(digest));
    expect((await readAll(client, digest, { offset: MiB + 5, size: 1000 })).equals(data.subarray(MiB + 5, MiB + 1005))).toBe(true);
    expect((await readAll(client, digest, { offset: data.length - 10 })).equals(data.subarray(data.length - 10))).toBe(true);
    expect((await readAll(client, digest, { offset: 0, size: 1 })).equals(data.subarray(0, 1))).toBe(true);
    expect((await readAll(client, digest, { offset: 2 * MiB - 1, size: MiB + 2 })).equals(data.subarray(2 * MiB - 1, 3 * MiB + 1))).toBe(true);
    expect(t.getsOf(digest)).toBe(1);
  });

  it('keeps a blob read as sequential 1 MiB Reads, as containerd\'s content proxy reads one', async () => {
    const data = randomBlob(5 * MiB + 999);
    const { digest } = await writeBlob(client, 'proxy', data);
    const parts: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += MiB) {
      parts.push(await readAll(client, digest, { offset, size: Math.min(MiB, data.length - offset) }));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    await until(() => t.kept(digest));
    expect((await readAll(client, digest)).equals(data)).toBe(true);
    expect(t.getsOf(digest)).toBe(1);
  });

  it('fills once when two reads of a blob that is not kept run at once', async () => {
    const data = randomBlob(4 * MiB);
    const { digest } = await writeBlob(client, 'together', data);
    const [a, b] = await Promise.all([readAll(client, digest), readAll(client, digest)]);
    expect(a.equals(data) && b.equals(data)).toBe(true);
    await until(() => t.kept(digest));
    // the fill's end is logged just after its file is in place
    await until(() => fillOutcomes(t.d, digest).length > 0);
    expect(fillOutcomes(t.d, digest)).toEqual(['kept']);
    expect(readdirSync(join(t.dir, 'tmp'))).toEqual([]);
  });

  it('never keeps bytes that do not match their digest: the read returns what S3 holds, as it does without the tier', async () => {
    const claimed = digestOf(randomBlob(2 * MiB));
    const stored = randomBlob(2 * MiB);
    await putObject(t.d.bucket!, `blobs/${claimed}`, stored);
    expect((await readAll(client, claimed)).equals(stored)).toBe(true);
    await until(() => fillOutcomes(t.d, claimed).length > 0);
    expect(fillOutcomes(t.d, claimed)).toEqual(['read tier: the bytes S3 holds for this blob do not match its digest; not kept']);
    expect(t.onDisk(claimed)).toBe(false);
    expect((await readAll(client, claimed)).equals(stored)).toBe(true);
    expect(t.getsOf(claimed)).toBe(2);
  });

  it('answers NotFound in a namespace that deleted the blob, while other namespaces read it from the tier', async () => {
    const data = randomBlob(MiB + 3);
    const { digest } = await writeBlob(client, 'held', data, { metadata: ns('holder') });
    await readAll(client, digest, { namespace: 'holder' });
    await until(() => t.kept(digest));
    await call(client, 'Delete', { digest }, ns('holder'));
    expect((await failure(readAll(client, digest, { namespace: 'holder' }))).code).toBe(status.NOT_FOUND);
    expect((await readAll(client, digest, { namespace: 'other' })).equals(data)).toBe(true);
    expect(t.getsOf(digest)).toBe(1);
  });
});

describe('the read tier\'s bounds', () => {
  let t: TierDaemon;
  let client: ContentClient;
  const blob = async (ref: string, size: number) => {
    const data = randomBlob(size);
    return { data, digest: (await writeBlob(client, ref, data)).digest };
  };

  beforeAll(async () => {
    t = await tierDaemon({ flags: { cacheMaxSize: '3MiB' } });
    client = t.d.content();
  });
  afterAll(async () => t?.d.stop());

  it('evicts the least recently read blobs to stay within --cache-max-size', async () => {
    const a = await blob('a', MiB);
    const b = await blob('b', MiB);
    const c = await blob('c', MiB + MiB / 2);
    for (const x of [a, b]) {
      await readAll(client, x.digest);
      await until(() => t.kept(x.digest));
    }
    // a read last: b is the least recently read when c needs room
    expect((await readAll(client, a.digest)).equals(a.data)).toBe(true);
    await readAll(client, c.digest);
    await until(() => t.kept(c.digest));
    expect([t.kept(a.digest), t.onDisk(b.digest)]).toEqual([true, false]);
    const gets = t.getsOf(b.digest);
    expect((await readAll(client, b.digest)).equals(b.data)).toBe(true);
    expect(t.getsOf(b.digest)).toBe(gets + 1);
  });

  it('never keeps a blob larger than --cache-max-size, nor evicts anything for it', async () => {
    const big = await blob('big', 4 * MiB);
    const small = await blob('small', MiB);
    await readAll(client, small.digest);
    await until(() => t.kept(small.digest));
    expect((await readAll(client, big.digest)).equals(big.data)).toBe(true);
    expect((await readAll(client, big.digest)).equals(big.data)).toBe(true);
    expect(t.getsOf(big.digest)).toBe(2);
    expect([t.onDisk(big.digest), t.kept(small.digest)]).toEqual([false, true]);
  });
});

describe('the read tier\'s eviction, in step with what fills write', () => {
  let t: TierDaemon;
  let client: ContentClient;
  /** Two blobs of 1 MiB kept in a tier of 3 MiB, and a blob of 2 MiB not kept. */
  const fullTier = async (name: string) => {
    const kept = [randomBlob(MiB), randomBlob(MiB)];
    const digests: string[] = [];
    for (const [i, data] of kept.entries()) {
      const { digest } = await writeBlob(client, `${name}-${i}`, data);
      await readAll(client, digest);
      await until(() => t.kept(digest));
      digests.push(digest);
    }
    const big = randomBlob(2 * MiB);
    return { kept: digests, big: { data: big, digest: (await writeBlob(client, `${name}-big`, big)).digest } };
  };
  /** Lets unlinks the daemon started land. */
  const settle = () => new Promise((r) => setTimeout(r, 200));

  beforeEach(async () => {
    // built here, so that a read can be left early right at the store
    t = await tierDaemon({ confirmMs: 30_000, maxBytes: 3 * MiB });
    client = t.d.content();
  });
  afterEach(async () => t?.d.stop());

  it('evicts nothing kept for a Read of a blob\'s first byte', async () => {
    const { kept, big } = await fullTier('first-byte');
    expect((await readAll(client, big.digest, { size: 1 })).equals(big.data.subarray(0, 1))).toBe(true);
    await settle();
    expect(kept.map((d) => t.kept(d))).toEqual([true, true]);
  });

  it('evicts nothing kept for a whole read left after its first piece, as an interrupted `ctr content get` leaves it', async () => {
    const { kept, big } = await fullTier('left');
    const source = await t.tier!.readBlob(big.digest, 0, big.data.length, { size: big.data.length });
    // a whole read is a stream, read a piece at a time
    const reading = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = (await reading.next()).value as Buffer;
    expect(first.length).toBeLessThan(MiB);
    await reading.return?.(undefined);
    await settle();
    expect(kept.map((d) => t.kept(d))).toEqual([true, true]);
  });

  it('evicts the least recently read blob once a fill\'s bytes need its room, and keeps the blob filled', async () => {
    const { kept, big } = await fullTier('whole');
    expect((await readAll(client, big.digest)).equals(big.data)).toBe(true);
    await until(() => t.kept(big.digest));
    expect([t.onDisk(kept[0]!), t.kept(kept[1]!)]).toEqual([false, true]);
  });
});

describe('the read tier across a restart, and when its disk fails', () => {
  it('finds the blobs it kept again after a restart', async () => {
    const dir = tempDir('s3cs-tier-');
    const first = await tierDaemon({ dir });
    const data = randomBlob(2 * MiB + 1);
    const { digest } = await writeBlob(first.d.content(), 'restart', data);
    await readAll(first.d.content(), digest);
    await until(() => first.kept(digest));
    await first.d.stop();

    const second = await tierDaemon({ dir, bucket: first.d.bucket! });
    try {
      expect((await readAll(second.d.content(), digest)).equals(data)).toBe(true);
      expect(second.getsOf(digest)).toBe(0);
    } finally {
      await second.d.stop();
    }
  });

  it('goes on reading from S3 when the disk refuses a fill', async () => {
    const t = await tierDaemon();
    try {
      const data = randomBlob(2 * MiB);
      const { digest } = await writeBlob(t.d.content(), 'no-room', data);
      // where fills go is now a file: every fill fails as on a full disk
      rmSync(join(t.dir, 'tmp'), { recursive: true });
      writeFileSync(join(t.dir, 'tmp'), 'in the way');
      expect((await readAll(t.d.content(), digest)).equals(data)).toBe(true);
      await until(() => fillOutcomes(t.d, digest).length > 0);
      expect(fillOutcomes(t.d, digest)).toEqual(['read tier: could not keep a blob on disk; reads go on from S3']);
      expect(t.onDisk(digest)).toBe(false);
    } finally {
      await t.d.stop();
    }
  });
});

describe('the read tier and the collector', () => {
  /** S3 keeps times to the second: a blob written just now may look younger than a touch refresh of 0. */
  const settle = () => new Promise((r) => setTimeout(r, 1_100));
  const collectNow = (store: BlobStore) =>
    new Collector(collectorSourcesFor(store, new LeaseStore(store)), { graceMs: 0, touchRefreshMs: 0, logger: quietLogger(), lockSettleMs: 1_000 });
  const inS3 = async (bucket: string, digest: string) =>
    rawS3()
      .send(new HeadObjectCommand({ Bucket: bucket, Key: `blobs/${digest}` }))
      .then(() => true, () => false);

  /** Writes a blob in one namespace, reads it in another (so the tier keeps it), deletes the hold. */
  async function unreferencedButKept(t: TierDaemon): Promise<string> {
    const client = t.d.content();
    const { digest } = await writeBlob(client, 'doomed', randomBlob(MiB + 7), { metadata: ns('solo') });
    await readAll(client, digest, { namespace: 'elsewhere' });
    await until(() => t.kept(digest));
    await call(client, 'Delete', { digest }, ns('solo'));
    await settle();
    return digest;
  }

  it('drops a blob this daemon\'s collector reclaims, which then reads as NotFound', async () => {
    const t = await tierDaemon({ confirmMs: 3_600_000 });
    try {
      const digest = await unreferencedButKept(t);
      const reports = await collectUntil(() => collectNow(t.tier!).run({ delete: true }), async () => !(await inS3(t.d.bucket!, digest)));
      expect(await inS3(t.d.bucket!, digest), `collector runs: ${JSON.stringify(reports)}`).toBe(false);
      expect(t.onDisk(digest)).toBe(false);
      expect((await failure(readAll(t.d.content(), digest, { namespace: 'elsewhere' }))).code).toBe(status.NOT_FOUND);
    } finally {
      await t.d.stop();
    }
  });

  it('counts its word from S3 for a kept blob from the read that began its fill, not from when the fill ended', async () => {
    const t = await tierDaemon({ confirmMs: 4_000 });
    try {
      const data = randomBlob(2 * MiB);
      const { digest } = await writeBlob(t.d.content(), 'slow-fill', data);
      // containerd's proxy reading on after a pause: the fill ends five seconds after it began,
      // and the read below comes well within the period of its end
      await readAll(t.d.content(), digest, { size: MiB });
      await new Promise((r) => setTimeout(r, 5_000));
      await readAll(t.d.content(), digest, { offset: MiB });
      await until(() => t.kept(digest), 5_000);
      // deleted from S3 (a bucket rule, another tool): the fill's word is older than the period
      await rawS3().send(new DeleteObjectCommand({ Bucket: t.d.bucket!, Key: `blobs/${digest}` }));
      expect((await failure(readAll(t.d.content(), digest))).code).toBe(status.NOT_FOUND);
    } finally {
      await t.d.stop();
    }
  });

  it('stops serving a blob another daemon\'s collector reclaimed once its word from S3 is older than the period, and drops it', async () => {
    const t = await tierDaemon({ confirmMs: 1_000 });
    useS3Credentials();
    const other = await openBlobStore(resolveConfig({ bucket: t.d.bucket!, endpointUrl: s3().endpoint, region: s3().region }, {}), quietLogger());
    try {
      const digest = await unreferencedButKept(t);
      const reports = await collectUntil(() => collectNow(other).run({ delete: true }), async () => !(await inS3(t.d.bucket!, digest)));
      expect(await inS3(t.d.bucket!, digest), `collector runs: ${JSON.stringify(reports)}`).toBe(false);
      await new Promise((r) => setTimeout(r, 1_100));
      expect((await failure(readAll(t.d.content(), digest, { namespace: 'elsewhere' }))).code).toBe(status.NOT_FOUND);
      await until(() => !t.onDisk(digest), 5_000);
    } finally {
      await other.close();
      await t.d.stop();
    }
  });
});

describe('the read tier\'s memory', () => {
  it('holds no more of its kept files for Reads whose clients take nothing than its budget of pieces, and each still reads every byte', async () => {
    const t = await tierDaemon({ confirmMs: 3_600_000 });
    try {
      const data = randomBlob(4 * MiB);
      const { digest } = await writeBlob(t.d.content(), 'stalled-readers', data);
      await readAll(t.d.content(), digest);
      await until(() => t.kept(digest));
      // the fill's own GETs are not the readers'
      const getsBefore = t.getsOf(digest);
      const readers: AsyncIterator<Buffer>[] = [];
      const first: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        // a Read of the whole kept blob streams from the file (a small one would come back whole)
        const reader = ((await t.tier!.readBlob(digest, 0, data.length, { size: data.length })) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        readers.push(reader);
        first.push((await reader.next()).value as Buffer);
      }
      // each reader holds its first piece and one read ahead: 40 of 1 MiB each were 80 MiB
      expect(t.tier!.usage().readAhead.inUse).toBeLessThanOrEqual(32 * MiB + 40 * 2 * 32 * 1024);
      expect(first.reduce((n, p) => n + p.length, 0)).toBeLessThanOrEqual(16 * MiB + 40 * 32 * 1024);
      for (const [i, reader] of readers.entries()) {
        const rest: Buffer[] = [first[i]!];
        for (let r = await reader.next(); !r.done; r = await reader.next()) rest.push(r.value);
        expect(Buffer.concat(rest).equals(data)).toBe(true);
      }
      expect(t.tier!.usage().readAhead.inUse).toBe(0);
      // every reader read the kept file: none asked S3
      expect(t.getsOf(digest)).toBe(getsBefore);
    } finally {
      await t.d.stop();
    }
  });
});
