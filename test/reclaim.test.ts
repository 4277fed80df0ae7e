import { spawn, spawnSync } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore, DocEntry } from '../src/blobstore/types.js';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { unavailable } from '../src/errors.js';
import { Collector } from '../src/gc/collector.js';
import { collectorSourcesFor } from '../src/gc/sources.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { ByteBudget } from '../src/blobstore/budget.js';
import { Claims } from '../src/content/claims.js';
import { Memberships } from '../src/content/memberships.js';
import { LeaseStore } from '../src/leases/store.js';
import { docKeys, Documents } from '../src/metadata/documents.js';
import { registry } from '../src/metrics/registry.js';
import { ReclaimGuard } from '../src/metadata/reclaim-guard.js';
import { ReclaimMarks } from '../src/metadata/reclaim-marks.js';
import { openBlobStore } from '../src/server.js';
import { cacheConfig } from './support/buildkit.js';
import { overriding } from './support/overriding.js';
import {
  call,
  collect,
  failure,
  getObject,
  listKeys,
  ns,
  putObject,
  randomBlob,
  rawS3,
  s3,
  startDaemon,
  useS3Credentials,
  WriteSession,
  writeBlob,
  type TestDaemon,
  until,
  collectRuns,
  collectUntil,
} from './support/harness.js';

/**
 * Delete drops a namespace's hold; bytes go only through the collector, once nothing needs them
 * (no hold, no cache record, no unexpired lease), after the grace, never under a racing writer.
 */
describe('Delete by reference, and the collector', () => {
  let d: TestDaemon;
  let store: BlobStore;
  let leases: LeaseStore;
  const quiet = pino({ level: 'silent' });
  /** A collector with the grace and the touch refresh shortened for the test. */
  const collect0 = () => new Collector(collectorSourcesFor(store, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
  /** S3 keeps times to the second: a blob written just now may look younger than a touch refresh of 0. */
  const settle = () => new Promise((r) => setTimeout(r, 1_100));
  const stored = async (digest: string) => {
    try {
      await rawS3().send(new HeadObjectCommand({ Bucket: d.bucket!, Key: `blobs/${digest}` }));
      return true;
    } catch {
      return false;
    }
  };
  /** Has the collector delete the blob while S3 refuses, once, the note saying so (a transient error ends the run). */
  const deleteLosingOutcome = async (digest: string) => {
    let refused = false;
    const blobs = overriding(store, {
      putDoc: (key: string, body: Buffer) => {
        if (refused || key !== `v1/reclaim/${digest}` || !body.toString().includes('deletedAt')) return store.putDoc(key, body);
        refused = true;
        return Promise.reject(new Error('PUT of the note refused'));
      },
    });
    const collector = new Collector(collectorSourcesFor(blobs, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    await settle();
    for (let runs = 0; runs < 8 && !refused; runs++) await collector.run({ delete: true }).catch(() => undefined);
    expect(refused).toBe(true);
    expect(await stored(digest)).toBe(false);
  };
  const listed = async (namespace: string) =>
    (await collect<ListContentResponse__Output>(d.content().List({ filters: [] }, ns(namespace)))).flatMap((r) => r.info.map((i) => i.digest));
  const read = async (digest: string, namespace: string) =>
    Buffer.concat((await collect<ReadContentResponse__Output>(d.content().Read({ digest }, ns(namespace)))).map((c) => c.data));

  // A bucket of its own for each test: the collector lists all of it, and the namespaces each
  // test leaves would make every later run slower (runs went from under 1 s to over 4 s).
  beforeEach(async () => {
    d = await startDaemon();
    useS3Credentials();
    // a second store on the bucket, as `s3-content-store gc` or another daemon would have
    store = await openBlobStore(resolveConfig({ bucket: d.bucket!, endpointUrl: s3().endpoint, region: s3().region }, {}), quiet);
    leases = new LeaseStore(store);
  });
  afterEach(async () => {
    await store?.close();
    await d?.stop();
  });

  it('answers NotFound for a Delete in a namespace that does not hold the blob, and keeps BuildKit\'s blob', async () => {
    const layer = randomBlob(3000);
    const digest = digestOf(layer);
    await putObject(d.bucket!, `blobs/${digest}`, layer);
    await putObject(d.bucket!, 'manifests/kept-by-buildkit', cacheConfig([layer]));
    for (const namespace of ['default', 'test', 'other']) {
      const err = await failure(call(d.content(), 'Delete', { digest }, ns(namespace)));
      expect(err.code).toBe(status.NOT_FOUND);
    }
    expect(await stored(digest)).toBe(true);
    expect((await read(digest, 'default')).equals(layer)).toBe(true);
  });

  it('deletes a blob nothing references only once it was last modified more than twice the touch refresh ago', async () => {
    // BuildKit skips the touch of a blob younger than its touch_refresh, and names it in a record
    // only once the rest of its export is uploaded
    const layer = randomBlob(3100);
    const digest = digestOf(layer);
    const putAt = Date.now();
    await putObject(d.bucket!, `blobs/${digest}`, layer);
    // a short settle: the second run must be done within the window below, give-ways included
    const touchRefreshed = () => new Collector(collectorSourcesFor(store, leases), { graceMs: 0, touchRefreshMs: 5_000, logger: quiet, lockSettleMs: 300 });
    await collectRuns(() => touchRefreshed().run({ delete: true }), 1);
    // older than the touch refresh by S3's clock (kept to the second), younger than twice it by
    // some seconds, for a slow run on a busy machine
    await new Promise((r) => setTimeout(r, putAt + 6_000 - Date.now()));
    await collectRuns(() => touchRefreshed().run({ delete: true }), 1);
    expect(await stored(digest)).toBe(true);
    await new Promise((r) => setTimeout(r, putAt + 11_000 - Date.now()));
    await collectUntil(() => touchRefreshed().run({ delete: true }), async () => !(await stored(digest)));
    expect(await stored(digest)).toBe(false);
  });

  it('refuses a Delete in the bucket namespace, which lists every blob and holds none', async () => {
    const { digest } = await writeBlob(d.content(), 'in-bucket-ns', randomBlob(100));
    const err = await failure(call(d.content(), 'Delete', { digest }, ns('bucket')));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('holds none');
    expect(await stored(digest)).toBe(true);
  });

  it('reads an object under the manifests prefix too large to decode for the digests it names, and keeps those blobs', async () => {
    const data = randomBlob(1100);
    const { digest } = await writeBlob(d.content(), 'named-by-huge', data, { metadata: ns('huge') });
    await call(d.content(), 'Delete', { digest }, ns('huge'));
    // 17 MiB: more than a record is read whole, the digest past the first 16 MiB
    const huge = Buffer.concat([Buffer.from('{"padding":"'), Buffer.alloc(17 * 1024 * 1024, 0x20), Buffer.from(`","layers":[{"blob":"${digest}"}]}`)]);
    await putObject(d.bucket!, 'manifests/huge-record', huge);
    try {
      await settle();
      const [report] = await collectRuns(() => collect0().run({ delete: true }), 2);
      expect(report!.roots.records).toBeGreaterThan(0);
      expect(await stored(digest)).toBe(true);
      // the namespace that deleted its hold still finds it, as a blob a record needs
      expect(await call(d.content(), 'Info', { digest }, ns('huge'))).toMatchObject({ info: { digest } });
    } finally {
      await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: 'manifests/huge-record' }));
    }
  });

  it('holds no more bytes of cache records read at once than its bound, and keeps the blobs every record names', async () => {
    const digests: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { digest } = await writeBlob(d.content(), `bounded-${i}`, randomBlob(1200 + i), { metadata: ns('bounded') });
      await call(d.content(), 'Delete', { digest }, ns('bounded'));
      digests.push(digest);
      // 3 MiB each: six read side by side would hold 18 MiB
      const record = Buffer.concat([Buffer.from('{"padding":"'), Buffer.alloc(3 * 1024 * 1024, 0x20), Buffer.from(`","layers":[{"blob":"${digest}"}]}`)]);
      await putObject(d.bucket!, `manifests/bounded-${i}`, record);
    }
    let reading = 0;
    let most = 0;
    const counted = overriding(store, {
      getRecord: async (name: string, admit?: (bytes: number) => void) => {
        let admitted = 0;
        try {
          return await store.getRecord(name, (bytes) => {
            admit?.(bytes);
            admitted = bytes;
            reading += bytes;
            most = Math.max(most, reading);
          });
        } finally {
          reading -= admitted;
        }
      },
    });
    const limit = 8 * 1024 * 1024;
    const sources = { ...collectorSourcesFor(counted, leases), recordBytes: new ByteBudget(limit) };
    try {
      await settle();
      await collectRuns(() => new Collector(sources, { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 }).run({ delete: true }), 2);
      for (const digest of digests) expect(await stored(digest)).toBe(true);
      expect(most).toBeGreaterThanOrEqual(3 * 1024 * 1024);
      expect(most).toBeLessThanOrEqual(limit);
    } finally {
      for (let i = 0; i < 6; i++) await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: `manifests/bounded-${i}` }));
    }
  });

  it('reads a record grown since its listing whole once there is room, so that a digest only JSON decoding finds keeps its blob', async () => {
    const { digest } = await writeBlob(d.content(), 'grown-record', randomBlob(1300), { metadata: ns('grown') });
    await call(d.content(), 'Delete', { digest }, ns('grown'));
    // the digest's letters as JSON escapes: read as it streams, the record names nothing
    const escaped = digest.replace(/[a-f]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
    await putObject(d.bucket!, 'manifests/grown', Buffer.from(`{"layers":[{"blob":"${escaped}"}],"padding":"${' '.repeat(2 * 1024 * 1024)}"}`));
    // listed at a byte, as before it grew
    const listedSmall = overriding(store, {
      listRecords: async (prefix: string, startAfter: string, limit: number, options?: { outside?: readonly string[] }) => {
        const page = await store.listRecords(prefix, startAfter, limit, options);
        return { ...page, entries: page.entries.map((e) => (e.name === 'grown' ? { ...e, size: 1 } : e)) };
      },
    });
    const MiB = 1024 * 1024;
    const recordBytes = new ByteBudget(4 * MiB);
    try {
      await settle();
      const sources = { ...collectorSourcesFor(listedSmall, leases), recordBytes };
      // in every run, another read holds most of the room as the record is found larger than listed
      const contended = async () => {
        await recordBytes.acquire(3 * MiB);
        let held = true;
        const letGo = () => void (held && ((held = false), recordBytes.release(3 * MiB)));
        const timer = setTimeout(letGo, 1_500);
        try {
          return await new Collector(sources, { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 }).run({ delete: true });
        } finally {
          clearTimeout(timer);
          letGo();
        }
      };
      await collectRuns(contended, 2);
      expect(await stored(digest)).toBe(true);
      expect(recordBytes.inUse).toBe(0);
    } finally {
      await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: 'manifests/grown' }));
    }
  });

  it('keeps the deletion mark of a blob written and Deleted in a namespace after the run listed the blobs', async () => {
    const data = randomBlob(900);
    const digest = digestOf(data);
    let fired = false;
    // the run's listing ends; then, before the run tidies, the namespace writes the blob and Deletes it
    const afterListing = async () => {
      if (fired) return;
      fired = true;
      await writeBlob(d.content(), 'late', data, { metadata: ns('late') });
      await call(d.content(), 'Delete', { digest }, ns('late'));
    };
    const sources = collectorSourcesFor(store, leases);
    const blobs = overriding(store, {
      async *listBlobs() {
        yield* store.listBlobs();
        await afterListing();
      },
    });
    const collector = new Collector({ ...sources, blobs }, { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    await collectRuns(() => collector.run({ delete: true }), 1);
    expect(fired).toBe(true);
    // the namespace still sees its Delete: Info and Read there answer NotFound
    expect(await listKeys(d.bucket!, `s3cs/v1/ns/late/deleted/${digest}`)).toEqual([`s3cs/v1/ns/late/deleted/${digest}`]);
  });

  it('reads a batch\'s holds key by key in a namespace with more holds than the threshold, keeping a blob held only since the scan and deleting one unheld', async () => {
    const kept = randomBlob(700);
    const late = randomBlob(701);
    const gone = randomBlob(702);
    const [lateDigest, goneDigest] = [digestOf(late), digestOf(gone)];
    await writeBlob(d.content(), 'by-key-kept', kept, { metadata: ns('by-key') });
    for (const [ref, data] of [['by-key-late', late], ['by-key-gone', gone]] as const) {
      await writeBlob(d.content(), ref, data, { metadata: ns('by-key') });
      await call(d.content(), 'Delete', { digest: digestOf(data) }, ns('by-key'));
    }
    await settle();
    // the first run notes the unreferenced blobs; the next may delete them
    await collectRuns(() => collect0().run({ delete: true }), 1);
    expect([await stored(lateDigest), await stored(goneDigest)]).toEqual([true, true]);
    let scanned = false;
    const listed: string[] = [];
    const read: string[] = [];
    // once the run has scanned and listed the blobs, the namespace holds the unreferenced blob again
    const blobs = overriding(store, {
      async *listBlobs() {
        yield* store.listBlobs();
        if (scanned) return;
        scanned = true;
        const at = new Date().toISOString();
        await store.putDoc(`v1/ns/by-key/content/${lateDigest}`, Buffer.from(JSON.stringify({ size: late.length, createdAt: at, updatedAt: at, labels: {} })));
      },
      listDocs: (prefix: string) => (scanned && listed.push(prefix), store.listDocs(prefix)),
      getDoc: (key: string) => (scanned && read.push(key), store.getDoc(key)),
    });
    const collector = new Collector(collectorSourcesFor(blobs, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000, holdsByKeyAbove: 0 });
    await collectRuns(() => collector.run({ delete: true }), 1);
    expect(scanned).toBe(true);
    // the one held again stays; the other, read by key and found unheld, goes
    expect([await stored(lateDigest), await stored(goneDigest)]).toEqual([true, false]);
    expect(read).toEqual(expect.arrayContaining([`v1/ns/by-key/content/${lateDigest}`, `v1/ns/by-key/content/${goneDigest}`]));
    expect(listed).not.toContain('v1/ns/by-key/content/');
    await store.deleteDoc(`v1/ns/by-key/content/${lateDigest}`);
  });

  it('reads a cache record again only once the listing shows it changed, and then goes by what it names now', async () => {
    const layer = randomBlob(590);
    await putObject(d.bucket!, `blobs/${digestOf(layer)}`, layer);
    await putObject(d.bucket!, 'manifests/kept-layers', cacheConfig([layer]));
    const reads: string[] = [];
    const counted = overriding(store, { getRecord: (name: string, admit?: (bytes: number) => void) => (reads.push(name), store.getRecord(name, admit)) });
    // one collector for every run, as the daemon's --gc-interval runs it
    const collector = new Collector(collectorSourcesFor(counted, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    const run = async () => {
      reads.length = 0;
      const report = await collector.run({ delete: false });
      return { read: reads.filter((name) => name === 'kept-layers').length, broken: report.brokenRecords.find((r) => r.name === 'kept-layers') };
    };
    expect(await run()).toEqual({ read: 1, broken: undefined });
    expect(await run()).toEqual({ read: 0, broken: undefined });
    // rewritten as BuildKit rewrites its records, now naming a blob that is not stored
    const missing = randomBlob(591);
    const gone = digestOf(missing);
    await putObject(d.bucket!, 'manifests/kept-layers', cacheConfig([layer, missing]));
    expect(await run()).toEqual({ read: 1, broken: { name: 'kept-layers', missing: [gone] } });
    expect(await run()).toEqual({ read: 0, broken: { name: 'kept-layers', missing: [gone] } });
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: 'manifests/kept-layers' }));
  });

  it('keeps the layers of a record its scan did not list that lists as older than the scan, as S3 times a record uploaded in parts by its start', async () => {
    const layer = randomBlob(592);
    const digest = digestOf(layer);
    await putObject(d.bucket!, `blobs/${digest}`, layer);
    await putObject(d.bucket!, 'manifests/in-parts', cacheConfig([layer]));
    await settle();
    // the record's upload completes only after the scan listed the records; once it does, S3
    // lists it with the time its upload began, an hour before
    let completed = false;
    const multipart = overriding(store, {
      async listRecords(prefix: string, startAfter: string, limit: number, options?: { outside?: readonly string[] }) {
        const page = await store.listRecords(prefix, startAfter, limit, options);
        const entries = page.entries
          .filter((e) => completed || e.name !== 'in-parts')
          .map((e) => (e.name === 'in-parts' ? { ...e, lastModified: new Date(Date.now() - 3_600_000) } : e));
        return { ...page, entries };
      },
    });
    const collector = new Collector(collectorSourcesFor(multipart, leases), {
      graceMs: 0,
      touchRefreshMs: 0,
      logger: quiet,
      lockSettleMs: 1_000,
      onProgress: (stage) => {
        if (stage === 'deleting') completed = true;
      },
    });
    const run = () => {
      completed = false;
      return collector.run({ delete: true });
    };
    // the first run notes the blob, the second deletes it unless its last check reads the record
    await collectRuns(run, 2);
    expect(await stored(digest)).toBe(true);
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: 'manifests/in-parts' }));
  });

  it('drops an expired lease only by what its record says now, not by one a lagging listing answers from an earlier scan', async () => {
    const key = 'v1/ns/lag/leases/made-again';
    const lease = (expire: string) => Buffer.from(JSON.stringify({ id: 'made-again', createdAt: new Date().toISOString(), labels: { 'containerd.io/gc.expire': expire } }));
    await putObject(d.bucket!, 's3cs/v1/namespaces/lag', Buffer.from('{"name":"lag"}'));
    await putObject(d.bucket!, `s3cs/${key}`, lease('2020-01-01T00:00:00Z'));
    let frozen: string | undefined;
    let freeze = false;
    // a listing that lags behind the bucket, as Swift's may: once frozen, it shows the lease's old version
    const lagging = overriding(store, {
      async *listDocs(prefix: string): AsyncIterable<DocEntry> {
        for await (const entry of store.listDocs(prefix)) {
          if (entry.key !== key) yield entry;
          else yield { key, version: freeze ? frozen : (frozen = entry.version) };
        }
      },
    });
    const collector = new Collector(collectorSourcesFor(lagging, new LeaseStore(lagging)), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    // a scan reads the expired lease (and keeps it); then it is deleted and made again, unexpired
    await collector.run({ delete: false });
    expect(frozen).toBeDefined();
    freeze = true;
    await putObject(d.bucket!, `s3cs/${key}`, lease('2099-01-01T00:00:00Z'));
    const [report] = await collectRuns(() => collector.run({ delete: true }), 1);
    expect(report!.expiredLeases).toBe(0);
    expect(JSON.parse((await getObject(d.bucket!, `s3cs/${key}`)).toString())).toMatchObject({ labels: { 'containerd.io/gc.expire': '2099-01-01T00:00:00Z' } });
    await store.deleteDoc(key);
  });

  it('lists the namespaces side by side in its last check, a bounded number at a time, and still deletes what none holds', async () => {
    const gone = await writeBlob(d.content(), 'side-by-side-gone', randomBlob(970), { metadata: ns('side-0') });
    for (let n = 1; n < 12; n++) await writeBlob(d.content(), `side-by-side-${n}`, randomBlob(970 + n), { metadata: ns(`side-${n}`) });
    await call(d.content(), 'Delete', { digest: gone.digest }, ns('side-0'));
    await settle();
    await collectRuns(() => collect0().run({ delete: true }), 1);
    let open = 0;
    let most = 0;
    // each listing of a namespace's holds or lease resources takes a while, as on a distant store
    const slow = overriding(store, {
      async *listDocs(prefix: string): AsyncIterable<DocEntry> {
        const counted = /^v1\/ns\/side-\d+\/(content|lease-resources)\/$/.test(prefix);
        if (counted) most = Math.max(most, ++open);
        try {
          if (counted) await new Promise((r) => setTimeout(r, 50));
          yield* store.listDocs(prefix);
        } finally {
          if (counted) open--;
        }
      },
    });
    const collector = new Collector(collectorSourcesFor(slow, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    await collectRuns(() => collector.run({ delete: true }), 1);
    expect(await stored(gone.digest)).toBe(false);
    // the scan lists one namespace at a time; only the last check lists several at once
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(8);
  });

  it('deletes nothing of a batch whose last check could not list a namespace, and deletes it once it can', async () => {
    const gone = await writeBlob(d.content(), 'check-fails-gone', randomBlob(990), { metadata: ns('check-fails-0') });
    await writeBlob(d.content(), 'check-fails-kept', randomBlob(991), { metadata: ns('check-fails-1') });
    await call(d.content(), 'Delete', { digest: gone.digest }, ns('check-fails-0'));
    await settle();
    await collectRuns(() => collect0().run({ delete: true }), 1);
    // a namespace's lease resources cannot be listed: only the last check lists them all at once
    const failing = overriding(store, {
      listDocs(prefix: string): AsyncIterable<DocEntry> {
        if (prefix === 'v1/ns/check-fails-1/lease-resources/') throw new Error('LIST refused');
        return store.listDocs(prefix);
      },
    });
    const collector = new Collector(collectorSourcesFor(failing, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    let failed: unknown;
    for (let tries = 0; tries < 6 && failed === undefined; tries++) {
      const report = await collector.run({ delete: true }).catch((err: unknown) => ((failed = err), undefined));
      if (report && report.skipped === undefined) break;
    }
    expect(String(failed)).toContain('LIST refused');
    expect(await stored(gone.digest)).toBe(true);
    // the batch had come to its last check: its note says final, and not deleted
    const note = JSON.parse((await getObject(d.bucket!, `s3cs/v1/reclaim/${gone.digest}`)).toString()) as { finalAt?: string; deletedAt?: string };
    expect(note.finalAt).toBeDefined();
    expect(note.deletedAt).toBeUndefined();
    await collectRuns(() => collect0().run({ delete: true }), 1);
    expect(await stored(gone.digest)).toBe(false);
  });

  it('asks the bucket whether a delete cut off at its deadline landed only once it had the time to, and then notes it deleted', async () => {
    const { digest } = await writeBlob(d.content(), 'cut-off', randomBlob(950), { metadata: ns('cut') });
    await call(d.content(), 'Delete', { digest }, ns('cut'));
    let cut = false;
    // S3 carries out a DELETE the client gave up on, half a second after the collector's deadline cut it off
    const blobs = overriding(store, {
      deleteBlob: async (victim: string, options: { deadline?: number } = {}) => {
        if (victim !== digest || options.deadline === undefined) return store.deleteBlob(victim, options);
        cut = true;
        setTimeout(() => void store.deleteBlob(victim).catch(() => undefined), 500);
        throw new Error('DELETE cut off at its deadline');
      },
    });
    const collector = new Collector({ ...collectorSourcesFor(store, leases), blobs }, { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000, deleteSettleMs: 1_500 });
    await settle();
    await collectUntil(() => collector.run({ delete: true }), async () => cut);
    expect(cut).toBe(true);
    expect(await stored(digest)).toBe(false);
    // writers that read this note ask the bucket, rather than trusting bytes that are gone
    const note = await rawS3().send(new GetObjectCommand({ Bucket: d.bucket!, Key: `s3cs/v1/reclaim/${digest}` }));
    expect(JSON.parse(await note.Body!.transformToString())).toHaveProperty('deletedAt');
  });

  it('keeps the note of a blob it deleted whose note saying so failed, past the next run, so a daemon still remembering the blob does not answer AlreadyExists for it', async () => {
    const data = randomBlob(960);
    const { digest } = await writeBlob(d.content(), 'outcome-lost', data, { metadata: ns('outcome-lost') });
    await call(d.content(), 'Delete', { digest }, ns('outcome-lost'));
    // another daemon on the bucket, which learned that the blob exists before the collector deleted it
    const elsewhere = await openBlobStore(resolveConfig({ bucket: d.bucket!, endpointUrl: s3().endpoint, region: s3().region }, {}), quiet);
    try {
      expect(await elsewhere.statBlob(digest)).toBeDefined();
      await deleteLosingOutcome(digest);
      const note = JSON.parse((await getObject(d.bucket!, `s3cs/v1/reclaim/${digest}`)).toString()) as { finalAt?: string; deletedAt?: string };
      expect(note.finalAt).toBeDefined();
      expect(note.deletedAt).toBeUndefined();
      // the next run, minutes later at most (a cron's `gc --delete`)
      await collectRuns(() => collect0().run({ delete: true }), 1);
      expect(await listKeys(d.bucket!, `s3cs/v1/reclaim/${digest}`)).toEqual([`s3cs/v1/reclaim/${digest}`]);
      // a Write opened there with the digest: its cache says the bytes are stored, the note says ask the bucket
      const remembered = await elsewhere.statBlob(digest);
      expect(remembered).toBeDefined();
      const docs = new Documents(elsewhere);
      const memberships = new Memberships(docs);
      const claims = new Claims(elsewhere, memberships, new ReclaimGuard(new ReclaimMarks(docs), elsewhere, 300));
      expect(await claims.holdIfStays('outcome-lost-2', digest, remembered!)).toBe(false);
      expect(await memberships.read('outcome-lost-2', digest, { fresh: true })).toBeUndefined();
    } finally {
      await elsewhere.close();
    }
  });

  it('starts the grace over for bytes stored again while the note of their deletion stays, though the note saying they were deleted failed', async () => {
    const data = randomBlob(970);
    const { digest } = await writeBlob(d.content(), 'outcome-lost-again', data, { metadata: ns('outcome-lost-again') });
    await call(d.content(), 'Delete', { digest }, ns('outcome-lost-again'));
    await deleteLosingOutcome(digest);
    // a run that finds the bytes gone and keeps their note, for the daemons still remembering them
    await collectRuns(() => collect0().run({ delete: true }), 1);
    // the bytes come back without a reference yet, as BuildKit uploads a blob before the record naming it
    const again = Date.now();
    await putObject(d.bucket!, `blobs/${digest}`, data);
    await settle();
    await collectRuns(() => collect0().run({ delete: true }), 1);
    expect(await stored(digest)).toBe(true);
    const note = JSON.parse((await getObject(d.bucket!, `s3cs/v1/reclaim/${digest}`)).toString()) as { since: string; finalAt?: string };
    expect(note.finalAt).toBeUndefined();
    expect(Date.parse(note.since)).toBeGreaterThanOrEqual(again);
  });

  it('drops only the deleting namespace\'s hold: another namespace keeps the blob, and it still reads like any shared blob', async () => {
    const data = randomBlob(700);
    const { digest } = await writeBlob(d.content(), 'shared-a', data, { metadata: ns('team-a') });
    await writeBlob(d.content(), 'shared-b', data, { expected: digestOf(data), metadata: ns('team-b') }).catch(() => undefined);
    expect(await listed('team-b')).toContain(digest);

    await call(d.content(), 'Delete', { digest }, ns('team-a'));
    expect(await listed('team-a')).not.toContain(digest);
    expect(await listed('team-b')).toContain(digest);
    expect(await stored(digest)).toBe(true);
    // held elsewhere: Info and Read in team-a find it as any shared blob
    expect(await call(d.content(), 'Info', { digest }, ns('team-a'))).toMatchObject({ info: { digest } });
    expect((await read(digest, 'team-a')).equals(data)).toBe(true);
    await collectRuns(() => collect0().run({ delete: true }), 2);
    expect(await stored(digest)).toBe(true);
  });

  it('makes bytes nothing else needs NotFound at once for the deleting namespace, and the collector reclaims them after the grace', async () => {
    const { digest } = await writeBlob(d.content(), 'lonely', randomBlob(900), { metadata: ns('solo') });
    await call(d.content(), 'Delete', { digest }, ns('solo'));
    expect((await failure(call(d.content(), 'Info', { digest }, ns('solo')))).code).toBe(status.NOT_FOUND);
    expect((await failure(collect(d.content().Read({ digest }, ns('solo'))))).code).toBe(status.NOT_FOUND);

    // the first run notes it (the grace starts), a run within the grace keeps it
    const graceful = new Collector(collectorSourcesFor(store, leases), { graceMs: 3_600_000, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
    await collectRuns(() => graceful.run({ delete: true }), 2);
    expect(await stored(digest)).toBe(true);
    // past the grace it goes, and no daemon finds it any more
    await settle();
    const reports = await collectUntil(() => collect0().run({ delete: true }), async () => !(await stored(digest)));
    expect(reports.reduce((n, r) => n + r.reclaimed.count, 0)).toBeGreaterThanOrEqual(1);
    expect(await stored(digest)).toBe(false);
    // (a daemon may remember for a while that the blob existed; a Read asks the bucket)
    expect((await failure(collect(d.content().Read({ digest }, ns('elsewhere'))))).code).toBe(status.NOT_FOUND);
  });

  it('holds a blob a Write finds stored through a daemon that saw its hold moments before another daemon deleted it, so the collector keeps it', async () => {
    const other = await startDaemon({ bucket: d.bucket! });
    try {
      const data = randomBlob(1300);
      const { digest } = await writeBlob(d.content(), 'seen-1', data, { metadata: ns('seen') });
      await call(other.content(), 'Delete', { digest }, ns('seen'));
      // the first daemon still has the hold it wrote in memory: AlreadyExists must stand on one in the bucket
      const session = new WriteSession(d.content(), ns('seen'));
      const err = await failure(session.send({ action: 'STAT', ref: 'seen-2', total: data.length, expected: digest }));
      expect(err.code).toBe(status.ALREADY_EXISTS);
      await settle();
      await collectRuns(() => collect0().run({ delete: true }), 2);
      expect(await stored(digest)).toBe(true);
      expect((await read(digest, 'seen')).equals(data)).toBe(true);
    } finally {
      await other.stop();
    }
  });

  it('keeps the hold a failed commit wrote where it cannot tell whether the bytes are stored: another writer may have stored them under it', async () => {
    const digest = digestOf(randomBlob(1400));
    const docs = new Documents(store);
    const memberships = new Memberships(docs);
    // S3 refuses the commit's PUT of the bytes, and then the look-up of whether they landed all the same
    const failing = overriding(store, { statBlob: () => Promise.reject(new Error('S3 is away')) });
    const claims = new Claims(failing, memberships, new ReclaimGuard(new ReclaimMarks(docs), failing));
    const commit = claims.commit('took-back', digest, {
      size: 1400,
      labels: {},
      absent: true,
      prepare: async () => undefined,
      store: () => Promise.reject(new Error('PUT failed')),
      alongside: async () => undefined,
    });
    await expect(commit).rejects.toThrow('PUT failed');
    expect(await memberships.read('took-back', digest, { fresh: true })).toMatchObject({ size: 1400 });
    await memberships.remove('took-back', digest);
  });

  it('lets a later Write of the same digest work as for new content after a reclaim', async () => {
    const data = randomBlob(1200);
    const { digest } = await writeBlob(d.content(), 'again-1', data, { metadata: ns('again') });
    await call(d.content(), 'Delete', { digest }, ns('again'));
    await settle();
    await collectUntil(() => collect0().run({ delete: true }), async () => !(await stored(digest)));
    expect(await stored(digest)).toBe(false);
    const done = await writeBlob(d.content(), 'again-2', data, { expected: digest, metadata: ns('again') });
    expect(done.digest).toBe(digest);
    expect(await stored(digest)).toBe(true);
    expect((await read(digest, 'again')).equals(data)).toBe(true);
  });

  it('keeps blobs a cache record, an unexpired lease or a gc.ref label needs, after every namespace deleted its hold', async () => {
    const write = async (ref: string, data: Buffer, labels: Record<string, string> = {}) =>
      (await writeBlob(d.content(), ref, data, { metadata: ns('roots'), labels })).digest;
    const byRecord = randomBlob(500);
    const recorded = await write('by-record', byRecord);
    await call(d.records(), 'Put', { names: ['roots-cache'], config: cacheConfig([byRecord]) });
    const leased = await write('by-lease', randomBlob(510));
    await call(d.leases(), 'Create', { id: 'keeps', labels: { 'containerd.io/gc.expire': new Date(Date.now() + 3_600_000).toISOString() } }, ns('roots'));
    await call(d.leases(), 'AddResource', { id: 'keeps', resource: { id: leased, type: 'content' } }, ns('roots'));
    const expiredLease = await write('by-expired-lease', randomBlob(520));
    await call(d.leases(), 'Create', { id: 'expired', labels: { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z' } }, ns('roots'));
    await call(d.leases(), 'AddResource', { id: 'expired', resource: { id: expiredLease, type: 'content' } }, ns('roots'));
    const target = await write('gc-ref-target', randomBlob(530));
    await write('gc-ref-source', randomBlob(540), { 'containerd.io/gc.ref.content.l.0': target });
    const unreferenced = await write('nothing', randomBlob(550));
    for (const digest of [recorded, leased, expiredLease, target, unreferenced]) await call(d.content(), 'Delete', { digest }, ns('roots'));

    await settle();
    const reports = await collectUntil(
      () => collect0().run({ delete: true }),
      async () => !(await stored(expiredLease)) && !(await stored(unreferenced)),
    );
    expect(reports.length).toBeGreaterThanOrEqual(2);
    for (const digest of [recorded, leased, target]) expect(await stored(digest), digest).toBe(true);
    expect(await stored(expiredLease)).toBe(false);
    expect(await stored(unreferenced)).toBe(false);
    expect(reports.reduce((n, r) => n + r.expiredLeases, 0)).toBeGreaterThanOrEqual(1);
    expect((await failure(call(d.leases(), 'ListResources', { id: 'expired' }, ns('roots')))).code).toBe(status.NOT_FOUND);
  });

  it('removes the resources a lease Delete cut short left behind, and then reclaims their blobs', async () => {
    const { digest } = await writeBlob(d.content(), 'orphaned', randomBlob(580), { metadata: ns('orphans') });
    await call(d.leases(), 'Create', { id: 'cut-short' }, ns('orphans'));
    await call(d.leases(), 'AddResource', { id: 'cut-short', resource: { id: digest, type: 'content' } }, ns('orphans'));
    await call(d.content(), 'Delete', { digest }, ns('orphans'));
    // a Delete removes the lease first, then its resources: one cut off in between leaves them
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: 's3cs/v1/ns/orphans/leases/cut-short' }));

    await settle();
    const reports = await collectUntil(() => collect0().run({ delete: true }), async () => !(await stored(digest)));
    expect(await stored(digest)).toBe(false);
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/orphans/lease-resources/')).toEqual([]);
    expect(reports.reduce((n, r) => n + r.orphanedResourcesRemoved, 0)).toBe(1);
  });

  it('puts back the resources it took for a lease gone, when the lease is created again meanwhile', async () => {
    const digest = digestOf(Buffer.from('held by a lease created again'));
    await leases.create('orphans', 'again', {});
    await leases.addResource('orphans', 'again', { id: digest, type: 'content' });
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: 's3cs/v1/ns/orphans/leases/again' }));

    // the lease comes back, and its resource is added again, right after it was found gone
    const dropped = await leases.dropOrphanedResources('orphans', async () => {
      await leases.create('orphans', 'again', {});
      await leases.addResource('orphans', 'again', { id: digest, type: 'content' });
    });
    expect(dropped).toBe(0);
    expect(await leases.listResources('orphans', 'again')).toEqual([{ id: digest, type: 'content' }]);
  });

  it('keeps a lease whose gc.expire is not RFC 3339, and its blobs, as containerd ignores a value it cannot parse', async () => {
    const careless = { '60': 'careless-seconds', '2024-01-01': 'careless-date' };
    const leased: string[] = [];
    for (const [expire, id] of Object.entries(careless)) {
      const { digest } = await writeBlob(d.content(), id, randomBlob(560 + leased.length), { metadata: ns('careless') });
      await call(d.leases(), 'Create', { id, labels: { 'containerd.io/gc.expire': expire } }, ns('careless'));
      await call(d.leases(), 'AddResource', { id, resource: { id: digest, type: 'content' } }, ns('careless'));
      await call(d.content(), 'Delete', { digest }, ns('careless'));
      leased.push(digest);
    }
    const { digest: unreferenced } = await writeBlob(d.content(), 'careless-nothing', randomBlob(570), { metadata: ns('careless') });
    await call(d.content(), 'Delete', { digest: unreferenced }, ns('careless'));

    await settle();
    await collectUntil(() => collect0().run({ delete: true }), async () => !(await stored(unreferenced)));
    expect(await stored(unreferenced)).toBe(false);
    for (const digest of leased) expect(await stored(digest), digest).toBe(true);
    for (const id of Object.values(careless)) {
      const listedResources = (await call(d.leases(), 'ListResources', { id }, ns('careless'))) as { resources: { id: string }[] };
      expect(listedResources.resources).toHaveLength(1);
    }
  });

  it('lets one deleting collector run at a time on a bucket', async () => {
    // a longer settle than the other tests use: a loaded machine's slow PUT must not make both give way
    const patient = () => new Collector(collectorSourcesFor(store, leases), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_500 });
    const runs = await Promise.all([patient().run({ delete: true }), patient().run({ delete: true })]);
    expect(runs.filter((r) => r.skipped !== undefined)).toHaveLength(1);
    expect(runs.find((r) => r.skipped)?.skipped).toContain('holds the bucket');
    // the lock is given back: the next run goes ahead
    expect((await patient().run({ delete: true })).skipped).toBeUndefined();
  });

  it('reports without deleting or noting anything in a dry run', async () => {
    const { digest } = await writeBlob(d.content(), 'dry', randomBlob(600), { metadata: ns('dry') });
    await call(d.content(), 'Delete', { digest }, ns('dry'));
    const before = await listKeys(d.bucket!);
    const report = await collect0().run({ delete: false });
    expect(report.deleted).toBe(false);
    expect(await listKeys(d.bucket!)).toEqual(before);
    expect(await stored(digest)).toBe(true);
  });

  it('makes a Write that finds a blob the collector is deleting send the bytes after all, and ends with the blob stored', async () => {
    const data = randomBlob(800);
    const digest = digestOf(data);
    await putObject(d.bucket!, `blobs/${digest}`, data);
    // a collector in its last check: it wrote finalAt, and deletes within the window
    await putObject(d.bucket!, `s3cs/v1/reclaim/${digest}`, Buffer.from(JSON.stringify({ since: '2020-01-01T00:00:00Z', finalAt: new Date().toISOString() })));
    const session = new WriteSession(d.content(), ns('racer'));
    const opening = session.send({ action: 'STAT', ref: 'racer', total: data.length, expected: digest });
    await new Promise((r) => setTimeout(r, 500));
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: `blobs/${digest}` }));
    await putObject(d.bucket!, `s3cs/v1/reclaim/${digest}`, Buffer.from(JSON.stringify({ since: '2020-01-01T00:00:00Z', finalAt: new Date().toISOString(), deletedAt: new Date().toISOString() })));
    // not AlreadyExists: the writer learned the bytes are gone and sends them
    const stat = await opening;
    expect(stat.offset).toBe(0);
    await session.send({ action: 'WRITE', ref: 'racer', offset: 0, data });
    await session.send({ action: 'COMMIT', ref: 'racer', total: data.length, offset: data.length, expected: digest });
    session.close();
    expect(await stored(digest)).toBe(true);
    expect(await listed('racer')).toContain(digest);
  });

  it('makes AddResource of content the collector is deleting answer only once the deletion is done, never while it may be missed', async () => {
    const data = randomBlob(810);
    const digest = digestOf(data);
    await putObject(d.bucket!, `blobs/${digest}`, data);
    await call(d.leases(), 'Create', { id: 'late' }, ns('lessee'));
    // a collector in its last check, which may have listed the lease resources already
    await putObject(d.bucket!, `s3cs/v1/reclaim/${digest}`, Buffer.from(JSON.stringify({ since: '2020-01-01T00:00:00Z', finalAt: new Date().toISOString() })));
    let answered = false;
    const adding = call(d.leases(), 'AddResource', { id: 'late', resource: { id: digest, type: 'content' } }, ns('lessee')).then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 700));
    expect(answered).toBe(false);
    await rawS3().send(new DeleteObjectCommand({ Bucket: d.bucket!, Key: `blobs/${digest}` }));
    await putObject(d.bucket!, `s3cs/v1/reclaim/${digest}`, Buffer.from(JSON.stringify({ since: '2020-01-01T00:00:00Z', finalAt: new Date().toISOString(), deletedAt: new Date().toISOString() })));
    await adding;
    // as in containerd, a lease may name content that is not stored
    const leased = (await call(d.leases(), 'ListResources', { id: 'late' }, ns('lessee'))) as { resources: { id: string }[] };
    expect(leased.resources.map((r) => r.id)).toEqual([digest]);
  });

  it('runs as `s3-content-store gc`: a dry run reports and changes nothing, --json gives the report', async () => {
    // a blob nothing references, as BuildKit leaves one before the record naming it
    const data = randomBlob(640);
    await putObject(d.bucket!, `blobs/${digestOf(data)}`, data);
    const cli = new URL('../dist/cli.js', import.meta.url).pathname;
    const env = { ...process.env, AWS_ACCESS_KEY_ID: s3().accessKey, AWS_SECRET_ACCESS_KEY: s3().secretKey, AWS_EC2_METADATA_DISABLED: 'true' };
    const args = ['gc', '--bucket', d.bucket!, '--endpoint-url', s3().endpoint, '--region', s3().region, '--log-level', 'error'];
    const text = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('dry run: give --delete to reclaim');
    const json = spawnSync(process.execPath, [cli, ...args, '--json'], { encoding: 'utf8', env });
    expect(json.status).toBe(0);
    const report = JSON.parse(json.stdout) as { deleted: boolean; blobs: { count: number } };
    expect(report.deleted).toBe(false);
    expect(report.blobs.count).toBe(1);
    expect(await stored(digestOf(data))).toBe(true);
  });

  it('shows `gc`\'s progress on a terminal, and nothing of it when stderr is not one', async () => {
    const cli = new URL('../dist/cli.js', import.meta.url).pathname;
    const args = ['gc', '--bucket', d.bucket!, '--endpoint-url', s3().endpoint, '--region', s3().region, '--log-level', 'error'];
    const env = { ...process.env, AWS_ACCESS_KEY_ID: s3().accessKey, AWS_SECRET_ACCESS_KEY: s3().secretKey, AWS_EC2_METADATA_DISABLED: 'true' };
    const command = [process.execPath, cli, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const onTerminal = spawnSync('script', ['-qfec', command, '/dev/null'], { encoding: 'utf8', env });
    expect(onTerminal.status).toBe(0);
    expect(onTerminal.stdout).toMatch(/marking \(\d+s\)/);
    expect(onTerminal.stdout).toContain('dry run: give --delete to reclaim');
    const piped = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });
    expect(piped.stderr).not.toContain('marking');
  });

  it('removes staging objects a failed copy or a crash left, once their day is a week past, and no newer one', async () => {
    const old = 's3cs/staging/2020-01-01/left-by-a-crash';
    const today = `s3cs/staging/${new Date().toISOString().slice(0, 10)}/being-copied`;
    await putObject(d.bucket!, old, randomBlob(100));
    await putObject(d.bucket!, today, randomBlob(100));
    const reports = await collectUntil(() => collect0().run({ delete: true }), async () => (await listKeys(d.bucket!, old)).length === 0);
    expect(reports.reduce((n, r) => n + r.stagingRemoved, 0)).toBe(1);
    expect(await listKeys(d.bucket!, old)).toEqual([]);
    expect(await listKeys(d.bucket!, today)).toEqual([today]);
  });

  it('removes a namespace\'s hold of a blob that is not stored once it is a day old (a crash between a hold and its bytes), and no newer one', async () => {
    const hold = (createdAt: Date) =>
      Buffer.from(JSON.stringify({ size: 10, createdAt: createdAt.toISOString(), updatedAt: createdAt.toISOString(), labels: {} }));
    const crashed = digestOf(randomBlob(64));
    const committing = digestOf(randomBlob(65));
    await putObject(d.bucket!, `s3cs/v1/ns/dangling/content/${crashed}`, hold(new Date(Date.now() - 25 * 3_600_000)));
    await putObject(d.bucket!, `s3cs/v1/ns/dangling/content/${committing}`, hold(new Date(Date.now() - 23 * 3_600_000)));
    expect(await listed('dangling')).toEqual([committing, crashed].sort());
    const reports = await collectUntil(() => collect0().run({ delete: true }), async () => !(await listed('dangling')).includes(crashed));
    expect(reports.reduce((n, r) => n + r.danglingHoldsRemoved, 0)).toBe(1);
    expect(await listed('dangling')).toEqual([committing]);
  });

  it('collects on its own in serve with --gc-interval', async () => {
    const collecting = await startDaemon({ bucket: d.bucket!, flags: { gcInterval: '300ms' } });
    try {
      await until(() => collecting.logs.some((l) => l.msg === 'collection done' || l.msg === 'another collector holds the bucket; this one deletes nothing now'));
    } finally {
      await collecting.stop();
    }
  });

  it('never leaves a hold or a record pointing at a missing blob when writers race the collector', async () => {
    const blobs = Array.from({ length: 6 }, (_, i) => randomBlob(300 + i));
    const digests = blobs.map((b) => digestOf(b));
    const broken: string[] = [];
    let runs = 0;
    let reclaimed = 0;
    // 10 s of racing, longer (up to 40 s) until the collector has taken a blob: on a loaded
    // machine its runs may give way or find their last check too slow for a while
    const started = Date.now();
    const going = () => Date.now() - started < 10_000 || (reclaimed === 0 && Date.now() - started < 40_000);
    // what each run did and warned of, shown should a hold or record turn out broken
    const events: string[] = [];
    const told = pino({ level: 'info' }, { write: (line: string) => void events.push(`${Date.now() - started} ms ${line.trim()}`) });
    const collector = async () => {
      while (going()) {
        const report = await new Collector(collectorSourcesFor(store, leases), { graceMs: 0, touchRefreshMs: 0, logger: told, lockSettleMs: 1_000 }).run({ delete: true });
        reclaimed += report.reclaimed.count;
        runs++;
      }
    };
    // Each writer takes a hold (AlreadyExists, or writing the bytes), checks the bytes are there
    // while it holds them, and lets go again, so the blobs keep falling to the collector.
    const writer = async (w: number) => {
      const namespace = ns(`race-${w}`);
      for (let n = 0; going(); n++) {
        const i = (w + n) % blobs.length;
        const digest = digests[i]!;
        await writeBlob(d.content(), `race-${w}-${n}`, blobs[i]!, { expected: digest, metadata: namespace }).catch((err: { code?: number }) => {
          if (err.code !== status.ALREADY_EXISTS) throw err;
        });
        if (!(await stored(digest))) broken.push(`hold of ${digest} in race-${w} at ${Date.now() - started} ms`);
        await call(d.content(), 'Delete', { digest }, namespace);
        if (n % 4 === 0) {
          const name = `race-${w}`;
          const put = await call(d.records(), 'Put', { names: [name], config: cacheConfig([blobs[i]!]) }).then(
            () => true,
            (err: { code?: number }) => {
              // a layer reclaimed meanwhile fails the Put and no record is kept; anything else is a bug
              if (err.code !== status.FAILED_PRECONDITION) throw err;
              return false;
            },
          );
          if (put && !(await stored(digest))) broken.push(`record ${name} naming ${digest}`);
          await call(d.records(), 'Delete', { name }).catch(() => undefined);
        }
      }
    };
    await Promise.all([collector(), writer(0), writer(1), writer(2)]);
    expect(broken, `collector runs:\n${events.slice(-40).join('\n')}`).toEqual([]);
    expect(runs).toBeGreaterThan(1);
    // the collector did take blobs while writers held and let go of them
    expect(reclaimed).toBeGreaterThan(0);
  }, 90_000);
});

/** Collections run in the test process, against the bucket of a daemon of their own. */
describe('collector runs beside a daemon of their own', () => {
  let d: TestDaemon;
  let store: BlobStore;
  const quiet = pino({ level: 'silent' });
  const lockKey = 's3cs/v1/gc-lock';

  beforeAll(async () => {
    d = await startDaemon();
    useS3Credentials();
    store = await openBlobStore(resolveConfig({ bucket: d.bucket!, endpointUrl: s3().endpoint, region: s3().region }, {}), quiet);
  });
  afterAll(async () => {
    await store?.close();
    await d?.stop();
  });

  /**
   * A collection told to stop (the daemon stopping, `gc` interrupted) stops between its S3 calls at
   * any step, deletes nothing from then on, and removes its lock on the bucket.
   */
  describe('a collection told to stop', () => {
    /** Runs until a run got past taking the lock (one may give way under load) and `reached` the step it is stopped at. */
    const runStopped = async (run: () => Promise<{ skipped?: string }>, reached: () => boolean) => {
      for (let tries = 0; tries < 6; tries++) {
        const report = await run();
        if (reached()) return report;
      }
      throw new Error('no run reached the step to stop at');
    };

    it('stopped once it has listed the blobs, removes no expired lease, and leaves no lock behind', async () => {
      await call(d.leases(), 'Create', { id: 'expired', labels: { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z' } }, ns('stop-after-listing'));
      let stopping: AbortController | undefined;
      let listed = false;
      const blobs = overriding(store, {
        async *listBlobs() {
          yield* store.listBlobs();
          listed = true;
          stopping?.abort();
        },
      });
      const collector = new Collector(collectorSourcesFor(blobs, new LeaseStore(blobs)), { graceMs: 3_600_000, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
      const report = await runStopped(() => {
        stopping = new AbortController();
        return collector.run({ delete: true, signal: stopping.signal });
      }, () => listed);
      expect(await listKeys(d.bucket!, 's3cs/v1/ns/stop-after-listing/leases/')).toEqual(['s3cs/v1/ns/stop-after-listing/leases/expired']);
      expect(report.skipped).toBe('stopped');
      expect(await listKeys(d.bucket!, lockKey)).toEqual([]);
    });

    it('stopped during the last check before a batch\'s deletions, deletes none of it, and its notes say waiting again', async () => {
      const data = randomBlob(1234);
      const { digest } = await writeBlob(d.content(), 'stop-in-last-check', data, { metadata: ns('stop-in-last-check') });
      await call(d.content(), 'Delete', { digest }, ns('stop-in-last-check'));
      await new Promise((r) => setTimeout(r, 1_100));
      const collector = (blobs: BlobStore) =>
        new Collector(collectorSourcesFor(blobs, new LeaseStore(blobs)), { graceMs: 0, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });
      // the first run notes the blob unreferenced; the next would delete it
      await collectRuns(() => collector(store).run({ delete: true }), 1);
      let stopping: AbortController | undefined;
      let listed = false;
      let checking = false;
      const blobs = overriding(store, {
        async *listBlobs() {
          yield* store.listBlobs();
          listed = true;
        },
        // the last check lists what namespaces hold: the stop comes then
        listDocs: (prefix: string, options?: { pageKeys?: number }) => {
          if (listed && !checking) {
            checking = true;
            stopping?.abort();
          }
          return store.listDocs(prefix, options);
        },
      });
      const report = await runStopped(() => {
        stopping = new AbortController();
        return collector(blobs).run({ delete: true, signal: stopping.signal });
      }, () => checking);
      expect((await listKeys(d.bucket!, `blobs/${digest}`)).length).toBe(1);
      expect(report.skipped).toBe('stopped');
      const mark = JSON.parse((await getObject(d.bucket!, `s3cs/v1/reclaim/${digest}`)).toString()) as Record<string, unknown>;
      expect(mark.finalAt).toBeUndefined();
      expect(mark.deletedAt).toBeUndefined();
      expect(await listKeys(d.bucket!, lockKey)).toEqual([]);
    });

    // last of these: a run killed outright would leave the lock, and the bucket's other runs give way to it
    it('as `s3-content-store gc --delete`, stops on SIGTERM, says so in one line, exits 143, and leaves no lock behind', async () => {
      const cli = new URL('../dist/cli.js', import.meta.url).pathname;
      const env = { ...process.env, AWS_ACCESS_KEY_ID: s3().accessKey, AWS_SECRET_ACCESS_KEY: s3().secretKey, AWS_EC2_METADATA_DISABLED: 'true' };
      const args = ['gc', '--delete', '--bucket', d.bucket!, '--endpoint-url', s3().endpoint, '--region', s3().region, '--log-level', 'error'];
      const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      try {
        // the run holds the bucket's lock from its first write of it (and waits 2 s before reading it back)
        await until(async () => (await listKeys(d.bucket!, lockKey)).length > 0, 30_000, 50);
        child.kill('SIGTERM');
        expect(await exited).toEqual({ code: 143, signal: null });
      } finally {
        child.kill('SIGKILL');
      }
      expect(stderr.trim().split('\n')).toEqual([expect.stringContaining('gc: stopped by SIGTERM before the collection was done')]);
      expect(await listKeys(d.bucket!, lockKey)).toEqual([]);
    });
  });

  /** A deleting collection whose taking of the bucket's lock failed half way leaves no lock behind. */
  describe('a collection that fails taking the lock', () => {
    const collector = (blobs: BlobStore) =>
      new Collector(collectorSourcesFor(blobs, new LeaseStore(blobs)), { graceMs: 3_600_000, touchRefreshMs: 0, logger: quiet, lockSettleMs: 1_000 });

    const deleteRunErrors = async () =>
      (await registry.getSingleMetric('s3cs_gc_runs_total')!.get()).values.find((v) => v.labels.mode === 'delete' && v.labels.outcome === 'error')?.value ?? 0;

    it('as S3 fails reading back the lock it wrote, fails with that error (a failed run in s3cs_gc_runs_total) and removes its lock: the next run goes ahead', async () => {
      let wrote = false;
      let failed = false;
      const blobs = overriding(store, {
        putDoc: async (key: string, body: Buffer) => {
          await store.putDoc(key, body);
          if (key === docKeys.gcLock()) wrote = true;
        },
        getDoc: async (key: string) => {
          if (key === docKeys.gcLock() && wrote && !failed) {
            failed = true;
            throw unavailable('GET of the collector lock: 503 Service Unavailable (injected)');
          }
          return store.getDoc(key);
        },
      });
      const errorsBefore = await deleteRunErrors();
      await expect(collector(blobs).run({ delete: true })).rejects.toThrow('(injected)');
      expect(failed).toBe(true);
      expect(await deleteRunErrors()).toBe(errorsBefore + 1);
      expect(await listKeys(d.bucket!, lockKey)).toEqual([]);
      // a lock left behind would turn every run away for its 10 minutes
      await collectRuns(() => collector(store).run({ delete: true }), 1);
    });
  });
});
