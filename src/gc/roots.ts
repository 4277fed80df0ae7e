import pMap from 'p-map';
import type { BlobStore, RecordEntry } from '../blobstore/types.js';
import type { Memberships } from '../content/memberships.js';
import { isValidDigest } from '../digest.js';
import { LeaseStore } from '../leases/store.js';
import { docKeys, type Documents } from '../metadata/documents.js';
import { layerBlobs } from '../records/cache-config.js';
import { digestsIn } from '../records/digest-scan.js';
import { cancelled, isStoreError, resourceExhausted } from '../errors.js';
import { ByteBudget, type BudgetMessages } from '../blobstore/budget.js';
import type { VersionedMemory } from '../metadata/versioned-memory.js';
import { mapAllEnded } from './settled-map.js';

/** What the collector's scans read; the daemon and `gc` build it from their own parts. */
export interface RootSources {
  blobs: BlobStore;
  docs: Documents;
  memberships: Memberships;
  leases: LeaseStore;
  /** Digests ingests of this process expect (the daemon's own; the bucket records the rest). */
  liveIngests?: (() => Set<string>) | undefined;
  /** The layers of the cache records earlier scans read, for the next scan (see VersionedMemory). */
  keptRecords?: VersionedMemory<string[]> | undefined;
  /** Bytes of cache records read at once: the process's own (RECORD_BYTES_AT_ONCE) unless given. */
  recordBytes?: ByteBudget | undefined;
}

/** Every blob something needs, and what needs it, for the report and the logs. */
export interface Roots {
  readonly digests: Set<string>;
  /** The blobs some namespace holds (a subset of `digests`). */
  readonly held: Set<string>;
  /** How many blobs each namespace held (the last check reads a large one's holds by key). */
  readonly holdsIn: ReadonlyMap<string, number>;
  readonly counts: { records: number; holds: number; leases: number; ingests: number };
  /** Blobs cache records name that are not stored (a record BuildKit cannot fully import). */
  readonly recordLayers: Map<string, readonly string[]>;
  /** When the scan began: records written since are read again by the last check. */
  readonly startedAt: number;
  /**
   * The version of each record the scan read: the last check reads again any it lists at another
   * version or not at all, whatever its time. S3 times an object uploaded in parts by the start
   * of its upload, so a record the scan missed may list as older than the scan.
   */
  readonly recordVersions: ReadonlyMap<string, string | undefined>;
}

/** containerd's labels by which a held blob keeps other content alive. */
const GC_REF_CONTENT = /^containerd\.io\/gc\.ref\.content(\.|$)/;

const RECORD_PAGE = 1000;
/**
 * Bytes of cache records the scan holds read at once (each up to 16 MiB, BuildKit's own as large
 * as it wrote them): sixteen read side by side could hold 256 MiB beside the daemon's own work.
 */
export const RECORD_BYTES_AT_ONCE = 32 * 1024 * 1024;
/** The scan waits its turn for them as long as it takes: the other reads it waits for end on their own. */
const RECORD_TURN_MS = 3_600_000;
const RECORD_BYTES: BudgetMessages = {
  exhausted: (limit, seconds) => `the collector's scan waited ${seconds}s for room among the ${limit} bytes of cache records it reads at once`,
  cancelled: 'the collector stopped while its scan waited to read a cache record',
};
/** One for the process: a daemon's collector and a `gc` may not overlap, but nothing need assume it. */
const processRecordBytes = new ByteBudget(RECORD_BYTES_AT_ONCE, RECORD_TURN_MS, RECORD_BYTES);
const RECORD_CLOCK_SLACK_MS = 60_000;
const CONCURRENCY = 16;
/** Listings the last check has running at once (each goes on page by page). */
const LISTINGS_AT_ONCE = 8;

/**
 * A collection told to stop (the daemon stopping, `gc` interrupted) ends with a cancelled
 * StoreError, thrown between its requests to S3: never between taking a document away and
 * putting it back.
 */
export function stopIfStopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelled('the collection was told to stop');
}

/**
 * The mark phase: every cache record under the manifests prefix (the layers it names), every
 * namespace's holds and the blobs their `containerd.io/gc.ref.content*` labels name, the
 * resources of leases that have not expired, and what ingests expect. `signal` stops it between
 * its requests (see stopIfStopped).
 */
export async function scanRoots(sources: RootSources, now = Date.now(), scope: 'all' | 'records-and-leases' = 'all', signal?: AbortSignal): Promise<Roots> {
  const startedAt = Date.now();
  const digests = new Set<string>();
  const held = new Set<string>();
  const holdsIn = new Map<string, number>();
  const counts = { records: 0, holds: 0, leases: 0, ingests: 0 };
  const recordLayers = new Map<string, readonly string[]>();
  const recordVersions = new Map<string, string | undefined>();
  const add = (digest: string) => digests.add(digest);

  await forEachRecord(sources, () => true, (name, version, layers, scanned) => {
    counts.records++;
    recordVersions.set(name, version);
    // a scanned record's digests are more than its layers: no report of missing ones from them
    if (!scanned) recordLayers.set(name, layers);
    layers.forEach(add);
  }, signal);

  for await (const ns of sources.memberships.namespaces()) {
    stopIfStopped(signal);
    if (scope === 'all') {
      for await (const { digest, record } of sources.memberships.all(ns, signal)) {
        counts.holds++;
        holdsIn.set(ns, (holdsIn.get(ns) ?? 0) + 1);
        add(digest);
        held.add(digest);
        for (const [key, value] of Object.entries(record.labels)) if (GC_REF_CONTENT.test(key) && isValidDigest(value)) add(value);
      }
    }
    for await (const lease of sources.leases.all(ns, signal)) {
      if (LeaseStore.expired(lease, now)) continue;
      stopIfStopped(signal);
      counts.leases++;
      // a stream, not ListResources: however many a lease holds, each one is seen
      try {
        for await (const r of sources.leases.resources(ns, lease.id)) if (r.type === 'content' && isValidDigest(r.id)) add(r.id);
      } catch (err) {
        // deleted since it was listed (BuildKit ends leases all the time): it protects nothing now
        if (!isStoreError(err, 'not-found')) throw err;
      }
    }
    if (scope !== 'all') continue;
    for await (const { value } of sources.docs.readAll<{ expected?: string }>(docKeys.ingestsPrefix(ns), { signal })) {
      if (value.expected && isValidDigest(value.expected)) {
        counts.ingests++;
        add(value.expected);
      }
    }
  }
  for (const digest of sources.liveIngests?.() ?? []) add(digest);
  return { digests, held, holdsIn, counts, recordLayers, startedAt, recordVersions };
}

/** The batch whose holds the last look reads key by key, in the namespaces named. */
export interface HoldsByKey {
  readonly digests: readonly string[];
  readonly namespaces: ReadonlySet<string>;
}

/**
 * The collector's last look, right before it deletes: what may have been written since the
 * scan, so that it fits in the collector's final window: every namespace's lease resources and
 * the cache records written since `since`, by listing (one request per thousand keys); the holds
 * of most namespaces by listing too, and in those of `byKey` (ones with many holds, whose listing
 * grew past the window) the batch's own holds, one read each, whatever the namespace holds.
 * The listings of different namespaces, the key reads and the records go side by side: one after
 * another, a few dozen namespaces took the window.
 */
export async function recentReferences(sources: RootSources, scanned: Pick<Roots, 'startedAt' | 'recordVersions'>, byKey?: HoldsByKey): Promise<Set<string>> {
  const found = new Set<string>();
  const namespaces: string[] = [];
  for await (const ns of sources.memberships.namespaces()) namespaces.push(ns);
  const reads = namespaces.filter((ns) => byKey?.namespaces.has(ns)).flatMap((ns) => byKey!.digests.map((digest) => ({ ns, digest })));
  const listings = namespaces.flatMap((ns) => [
    ...(byKey?.namespaces.has(ns) ? [] : [{ prefix: docKeys.contentPrefix(ns), take: (rest: string) => found.add(rest) }]),
    {
      prefix: docKeys.allLeaseResourcesPrefix(ns),
      take: (rest: string) => {
        const [, type, id] = rest.split('/').map(decodeURIComponent);
        if (type === 'content' && id !== undefined) found.add(id);
      },
    },
  ]);
  const outcomes = await Promise.allSettled([
    pMap(
      listings,
      async ({ prefix, take }) => {
        for await (const key of sources.docs.list(prefix)) take(key.slice(prefix.length));
      },
      { concurrency: LISTINGS_AT_ONCE },
    ),
    pMap(
      reads,
      async ({ ns, digest }) => {
        if (await sources.docs.present(docKeys.content(ns, digest))) found.add(digest);
      },
      { concurrency: CONCURRENCY },
    ),
    // slack for S3's times kept to the second, and for its clock and ours disagreeing; read, not
    // taken from what scans kept: what a record names now decides the deletion
    forEachRecord(
      { blobs: sources.blobs, recordBytes: sources.recordBytes },
      (entry) =>
        entry.lastModified.getTime() >= scanned.startedAt - RECORD_CLOCK_SLACK_MS ||
        !scanned.recordVersions.has(entry.name) ||
        // an S3 that tells no version (a gateway without ETags): read again; a local directory's
        // times are those of its writes, which nothing uploads in parts
        (entry.version === undefined && sources.blobs.remote) ||
        scanned.recordVersions.get(entry.name) !== entry.version,
      (_name, _version, layers) => layers.forEach((d) => found.add(d)),
    ),
  ]);
  // the first failure fails the check once the three have settled (a pool starts nothing more
  // after its first failure; what it had started may still end on its own)
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
  return found;
}

/**
 * Reads the cache records listed that `wants`, a few at a time from each of the listings that go
 * side by side (BlobStore.recordShards); one whose layers `kept` has at
 * the version listed is not read again. One too large to decode is read as it streams for every
 * digest it names (`scanned`), each time. `signal` stops it before its next request.
 */
async function forEachRecord(
  sources: Pick<RootSources, 'blobs' | 'keptRecords' | 'recordBytes'>,
  wants: (entry: RecordEntry) => boolean,
  visit: (name: string, version: string | undefined, layers: readonly string[], scanned: boolean) => void,
  signal?: AbortSignal,
): Promise<void> {
  const blobs = sources.blobs;
  const kept = sources.keptRecords;
  const inMemory = sources.recordBytes ?? processRecordBytes;
  const read = async (entry: RecordEntry) => {
    const known = kept?.get(entry.name, entry.version);
    if (known) return visit(entry.name, entry.version, known, false);
    stopIfStopped(signal);
    // one listed larger than the room would be refused whole: no room is taken for it
    const whole = entry.size > inMemory.limit ? 'too large' : await readWhole(blobs, inMemory, entry);
    if (whole === 'too large') {
      const chunks = await blobs.streamRecord(entry.name);
      if (chunks) visit(entry.name, entry.version, [...(await digestsIn(chunks, entry.name))], true);
    } else if (whole) {
      kept?.keep(entry.name, whole.version, whole.layers, whole.layers.reduce((n, d) => n + 2 * d.length + 16, 0));
      visit(entry.name, entry.version, whole.layers, false);
    }
  };
  // Where blobs share the records' key space, one listing would walk every blob key in turn, a
  // request per thousand: with equal prefixes and 150,000 blobs, longer than the last check's
  // window, so that nothing was ever deleted. Its shards go side by side.
  const shards = blobs.recordShards();
  const listings = [{ prefix: '', outside: shards }, ...shards.map((prefix) => ({ prefix, outside: [] }))];
  // The first failure stops the other listings before their next page, and is thrown once they
  // have: one left going page after page would read on beside the next run.
  await mapAllEnded(
    listings,
    async ({ prefix, outside }, failed) => {
      let startAfter = '';
      while (!failed()) {
        stopIfStopped(signal);
        const page = await blobs.listRecords(prefix, startAfter, RECORD_PAGE, { outside });
        if (failed()) return;
        await pMap(page.entries.filter(wants), read, { concurrency: CONCURRENCY });
        // a page may be short, even empty, where records share their prefix with blobs
        if (page.next === undefined) return;
        startAfter = page.next;
      }
    },
    listings.length,
  );
}

/**
 * A record read whole and its layers, with room for its bytes first (by the size listed). One
 * grown since is read again once there is room for what it is now: read as it streams instead,
 * only literal digests would count, not those a JSON decoder finds (escaped), and a blob a record
 * names could go. 'too large' where the store reads it only as it streams (over 16 MiB), or it
 * grew at every one of a few reads.
 */
async function readWhole(blobs: BlobStore, inMemory: ByteBudget, entry: RecordEntry): Promise<{ layers: string[]; version: string | undefined } | 'too large' | undefined> {
  let want = Math.max(1, entry.size);
  for (let tries = 1; ; tries++) {
    const reserved = await inMemory.acquire(want);
    let grown = 0;
    try {
      const record = await blobs.getRecord(entry.name, (bytes) => {
        if (bytes <= reserved) return;
        grown = bytes;
        throw resourceExhausted(`cache record ${entry.name}: ${bytes} bytes, more than the ${reserved} its read had room for`);
      });
      return record && { layers: layerBlobs(record.body), version: record.version };
    } catch (err) {
      if (!isStoreError(err, 'resource-exhausted')) throw err;
      if (grown === 0 || grown > inMemory.limit || tries >= 5) return 'too large';
      want = grown;
    } finally {
      inMemory.release(reserved);
    }
  }
}
