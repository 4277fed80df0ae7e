import { randomBytes } from 'node:crypto';
import pMap from 'p-map';
import type { BlobStore } from '../blobstore/types.js';
import { alreadyExists, isStoreError, notFound, resourceExhausted } from '../errors.js';
import { fieldBytes, labelsEncodedBytes, labelValue, validateLabels, type Labels } from '../labels.js';
import { Documents, docKeys } from '../metadata/documents.js';
import { ReclaimGuard } from '../metadata/reclaim-guard.js';
import { ReclaimMarks } from '../metadata/reclaim-marks.js';
import { validateNamespace } from '../namespaces/names.js';
import { parseFilters } from '../filters.js';
import { now, storedInstant, type Instant } from '../clock.js';
import { goRfc3339Millis } from '../records/go-time.js';
import { ResourceCounts } from './resource-counts.js';
import { checkId, checkResourceKind, isLeaseId, resourceKey, type LeaseResource } from './validation.js';

export type { LeaseResource } from './validation.js';

export interface Lease {
  id: string;
  createdAt: Instant;
  labels: Labels;
}

interface LeaseRecord {
  id: string;
  createdAt: string;
  labels: Labels;
  /** Only in records written before each resource had a document of its own. */
  resources?: LeaseResource[];
}

/** Resources one lease may hold; BuildKit holds one per blob and snapshot of a build. */
const MAX_LEASE_RESOURCES = 10_000;
/** Resource documents a Delete of a lease removes at once. */
const REMOVALS_AT_ONCE = 16;
/** What is kept of the leases listed (see Documents): some 15,000 leases with a label or two. */
const LEASES_KEPT_BYTES = 4 * 1024 * 1024;
/**
 * What ListResources answers with at most. Daemons sharing a bucket may each add the last
 * resource under the cap at once, so a lease may hold a few more than the cap: all are listed
 * (one dropped from the list is a blob the collector may take). Past this far larger bound the
 * call fails rather than build an answer without end; the collector reads them as a stream.
 */
const MAX_LISTED_RESOURCES = 4 * MAX_LEASE_RESOURCES;
/** Leases one List may answer with; past it the client is told to filter. */
const MAX_LISTED_LEASES = 10_000;
/**
 * Bytes one List may answer with, encoded (listedLeaseBytes). List answers in one message, which
 * the daemon sends up to 16 MiB and containerd's clients take up to 16 MiB (grpc-go's own default
 * is 4): each lease may carry 1 MiB of labels, so the count alone would let one answer, and the
 * memory it is built in, reach gigabytes; past the bound the refusal is the daemon's own, naming
 * it, not grpc-js's on a message too large to send.
 */
const MAX_LISTED_BYTES = 4 * 1024 * 1024;
/** A Timestamp field at its largest: seconds and nanos varints of 10 and 5 bytes, their tags, its tag and length. */
const TIMESTAMP_FIELD_BYTES = 19;

/**
 * containerd's leases, kept per namespace in the bucket so every daemon sharing it sees them.
 * Each resource is a document of its own: BuildKit commits a build's layers in parallel under
 * one lease, and a read-modify-write of one document would lose all but one of those adds
 * (across daemons too, since S3 has no compare-and-swap we may rely on).
 */
export class LeaseStore {
  private readonly docs: Documents;
  private readonly blobs: BlobStore;
  private readonly guard: ReclaimGuard;
  private readonly maxResources: number;
  private readonly maxListedBytes: number;
  private readonly counts: ResourceCounts;

  /**
   * `maxResources` and `maxListedBytes` are for tests, which cannot afford ten thousand PUTs, or
   * megabytes of labels. `keptForMs`: how long a lease listed stays remembered once no listing
   * finds it (see Documents).
   */
  constructor(blobs: BlobStore, options: { maxResources?: number; maxListedBytes?: number; keptForMs?: number } = {}) {
    this.maxResources = options.maxResources ?? MAX_LEASE_RESOURCES;
    this.maxListedBytes = options.maxListedBytes ?? MAX_LISTED_BYTES;
    this.counts = new ResourceCounts(this.maxResources);
    // List, and the collector's scans (it reads leases through this store), read every lease listed
    this.docs = new Documents(blobs, { keepListedBytes: LEASES_KEPT_BYTES, keptForMs: options.keptForMs });
    this.blobs = blobs;
    this.guard = new ReclaimGuard(new ReclaimMarks(this.docs), blobs);
  }

  /** `signal`: the caller went away; one still waiting for the lease's turn gives its place up. */
  async create(ns: string, id: string, labels: Labels, signal?: AbortSignal): Promise<Lease> {
    validateNamespace(ns);
    const leaseId = id === '' ? randomBytes(12).toString('base64url').replace(/^[-_]/, 'l') : checkId(id);
    validateLabels(labels, `lease ${leaseId}`);
    const key = docKeys.lease(ns, leaseId);
    // in the lease's turn: two Creates of one id would otherwise both find it free, and both answer
    return this.counts.turn(
      scoped(ns, leaseId),
      async () => {
        if (await this.docs.read(key)) throw alreadyExists(`lease ${JSON.stringify(leaseId)}: already exists`);
        const record: LeaseRecord = { id: leaseId, createdAt: now().toISOString(), labels: { ...labels } };
        // The namespace's marker (what containerd's namespace list shows) goes beside the lease: the
        // collector finds leases by listing the namespaces' documents, so neither waits for the other.
        await Promise.all([this.docs.write(docKeys.namespace(ns), { name: ns }), this.docs.write(key, record)]);
        return toLease(record);
      },
      signal,
    );
  }

  /** `signal`: as for create. */
  async delete(ns: string, id: string, signal?: AbortSignal): Promise<void> {
    validateNamespace(ns);
    checkId(id);
    await this.counts.turn(
      scoped(ns, id),
      async () => {
        await this.load(ns, id);
        await this.remove(ns, id);
      },
      signal,
    );
  }

  /**
   * In the lease's turn, whole: a Create and an add of the id made again meanwhile would have the
   * new lease's resources removed by this listing of the old one's.
   */
  private async remove(ns: string, id: string): Promise<void> {
    // adds given a place before this turn: their documents are listed, and go, with the others
    await this.counts.writesEnded(scoped(ns, id));
    // The lease goes first: from then on nothing counts its resources as held.
    await this.docs.remove(docKeys.lease(ns, id));
    // several at once: one at a time, a lease of 10,000 resources held its turn (and every other
    // call on its id) for minutes against an S3 tens of milliseconds away
    // every removal under way ends before the turn is let go, a failed one included: one landing
    // after would remove the document of a resource added to a lease made again under the id
    const removals = await pMap(
      this.docs.list(docKeys.leaseResourcesPrefix(ns, id)),
      (key) => this.docs.remove(key).then(() => undefined, (err: unknown) => ({ err })),
      { concurrency: REMOVALS_AT_ONCE },
    );
    const failed = removals.find((r) => r !== undefined);
    if (failed) throw failed.err;
    this.counts.forget(scoped(ns, id));
  }

  /** `signal`: the caller went away; the listing stops before its next read (CANCELLED). */
  async list(ns: string, filters: readonly string[], signal?: AbortSignal): Promise<Lease[]> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    const out: Lease[] = [];
    let bytes = 0;
    for await (const { value } of this.docs.readAll<LeaseRecord>(docKeys.leasesPrefix(ns), { signal })) {
      const matches = filter.matches((path) => {
        if (path.length === 1 && path[0] === 'id') return value.id;
        if (path.length >= 2 && path[0] === 'labels') return labelValue(value.labels, path.slice(1).join('.'));
        return undefined;
      });
      if (!matches) continue;
      if (out.length >= MAX_LISTED_LEASES) {
        throw resourceExhausted(`namespace ${ns} has more than ${MAX_LISTED_LEASES} matching leases; narrow the list with a filter`);
      }
      const lease = toLease(value);
      bytes += listedLeaseBytes(lease);
      if (bytes > this.maxListedBytes) {
        throw resourceExhausted(
          `namespace ${ns}: the matching leases come to more than ${this.maxListedBytes} bytes encoded (ids and labels), more than one List answers with; narrow the list with a filter`,
        );
      }
      out.push(lease);
    }
    return out;
  }

  /** Every lease of `ns`, without List's bound: the collector must see them all. `signal` stops the reading (CANCELLED). */
  async *all(ns: string, signal?: AbortSignal): AsyncIterable<Lease> {
    validateNamespace(ns);
    for await (const { value } of this.docs.readAll<LeaseRecord>(docKeys.leasesPrefix(ns), { signal })) yield toLease(value);
  }

  /**
   * Deletes the lease if it has expired by what its record says now: what a listing answered may
   * be a record read before (see Documents), and a lease deleted and made again under its id
   * since must not go for the old one's expiry. False when it stays, or is gone already.
   */
  async deleteIfExpired(ns: string, id: string, now = Date.now()): Promise<boolean> {
    let ran = false;
    try {
      return await this.counts.turn(scoped(ns, id), async () => {
        ran = true;
        const record = await this.docs.read<LeaseRecord>(docKeys.lease(ns, id));
        if (!record || !LeaseStore.expired(toLease(record), now)) return false;
        // straight on from the record read: a second read before the removal would widen the moment
        // in which a lease made again under the id goes for the old one's expiry
        await this.remove(ns, id);
        return true;
      });
    } catch (err) {
      // clients keep the lease busy past the turn's bounds: a later collection takes it
      if (!ran && isStoreError(err, 'resource-exhausted')) return false;
      throw err;
    }
  }

  /** NotFound unless the lease exists. */
  async require(ns: string, id: string): Promise<void> {
    await this.load(ns, id);
  }

  /** `signal`: the caller went away; one still waiting for the lease's turn gives its place up. */
  async addResource(ns: string, id: string, resource: LeaseResource, signal?: AbortSignal): Promise<void> {
    const key = resourceKey(ns, id, resource);
    checkResourceKind(resource);
    const lease = scoped(ns, id);
    // whether the lease exists is read in its turn: a Delete before it is over, and a Create after
    // it is not yet begun. The write goes on outside the turn, beside the other adds' (a Delete
    // waits for it).
    const place = await this.counts.turn(
      lease,
      async () => {
        const record = await this.load(ns, id);
        return this.counts.take(lease, () => this.count(ns, id, record));
      },
      signal,
    );
    if (!place) {
      // as containerd's add is idempotent, one the lease holds already is no new resource
      if (!(await this.docs.read(key))) {
        throw resourceExhausted(`lease ${JSON.stringify(id)} holds ${this.maxResources} resources, the most one lease may hold`);
      }
    } else {
      // adding one twice writes the same document again
      try {
        await this.docs.write(key, {});
        place.written();
      } catch (err) {
        place.failed();
        throw err;
      }
    }
    // The writers' half of the collector's protocol (reclaim-marks.ts): a collector whose last
    // check may have missed this resource is waited out, so that content stored when the call
    // answers stays stored. Content gone by then stays a resource naming nothing, as containerd
    // lets a lease name content not (yet) written.
    if (resource.type === 'content') await this.guard.stays(resource.id);
  }

  /** Takes any type and id, unlike add: what an older version let a lease hold can still go. `signal`: as for addResource. */
  async deleteResource(ns: string, id: string, resource: LeaseResource, signal?: AbortSignal): Promise<void> {
    const key = resourceKey(ns, id, resource);
    // in the lease's turn, as the lease's document may be read and written back whole
    await this.counts.turn(
      scoped(ns, id),
      async () => {
        const record = await this.load(ns, id);
        await this.docs.remove(key);
        const legacy = record.resources ?? [];
        const kept = legacy.filter((r) => !(r.id === resource.id && r.type === resource.type));
        if (kept.length !== legacy.length) await this.docs.write(docKeys.lease(ns, id), { ...record, resources: kept });
        this.counts.forget(scoped(ns, id));
      },
      signal,
    );
  }

  /**
   * Whether the lease's `containerd.io/gc.expire` time has passed. containerd reads it with
   * time.Parse(time.RFC3339, …) and keeps a lease whose value it cannot read (it logs it), as one
   * without the label: a careless label must not cost the lease its resources.
   */
  static expired(lease: Lease, now = Date.now()): boolean {
    const expire = labelValue(lease.labels, 'containerd.io/gc.expire');
    const at = expire === undefined ? undefined : goRfc3339Millis(expire);
    return at !== undefined && at < now;
  }

  /** All of them, in key order: by type, then id, as containerd's own store lists them. */
  async listResources(ns: string, id: string): Promise<LeaseResource[]> {
    const found = new Map<string, LeaseResource>();
    for await (const r of this.resources(ns, id)) {
      found.set(`${r.type}\0${r.id}`, r);
      if (found.size > MAX_LISTED_RESOURCES) {
        throw resourceExhausted(
          `lease ${JSON.stringify(id)} holds more than ${MAX_LISTED_RESOURCES} resources, too many to list at once; delete some, or the lease`,
        );
      }
    }
    return [...found.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  }

  /** Every resource of the lease, however many, as the bucket lists them (one may come twice). */
  async *resources(ns: string, id: string): AsyncIterable<LeaseResource> {
    const record = await this.load(ns, id);
    for (const r of record.resources ?? []) yield { id: r.id, type: r.type };
    const prefix = docKeys.leaseResourcesPrefix(ns, id);
    for await (const key of this.docs.list(prefix)) {
      const [type, rid] = key.slice(prefix.length).split('/').map(decodeURIComponent);
      if (type !== undefined && rid !== undefined) yield { id: rid, type };
    }
  }

  /**
   * Removes the resource documents of leases that are gone, which a Delete cut short leaves
   * (the lease goes first) and which would keep their blobs for ever. For the collector only,
   * under its lock, so that no collector decides while a document is away: a resource can only
   * be added while its lease exists, so one found gone may have been taken from a lease created
   * again under the same id meanwhile; when the lease is there again after the removal, what was
   * removed is put back (the lease then holds a few resources too many, never too few).
   */
  async dropOrphanedResources(ns: string, keepLock: () => Promise<void>): Promise<number> {
    validateNamespace(ns);
    const prefix = docKeys.allLeaseResourcesPrefix(ns);
    let dropped = 0;
    for await (const segment of this.docs.groups(prefix)) {
      let id: string;
      try {
        id = decodeURIComponent(segment);
      } catch {
        continue; // not a key this store writes
      }
      if (!isLeaseId(id) || (await this.leaseStored(ns, id))) continue;
      await keepLock();
      const removed: string[] = [];
      for await (const key of this.docs.list(`${prefix}${segment}/`)) {
        await this.docs.remove(key);
        removed.push(key);
      }
      if (await this.leaseStored(ns, id)) {
        for (const key of removed) await this.docs.write(key, {});
        continue;
      }
      this.counts.forget(scoped(ns, id));
      dropped += removed.length;
    }
    return dropped;
  }

  /** Whether the lease's document is there at all (one this version cannot read counts too). */
  private async leaseStored(ns: string, id: string): Promise<boolean> {
    return (await this.blobs.getDoc(docKeys.lease(ns, id))) !== undefined;
  }

  /** What the bucket holds for the lease, counted up to one past the cap. */
  private async count(ns: string, id: string, record: LeaseRecord): Promise<number> {
    let n = record.resources?.length ?? 0;
    for await (const _ of this.docs.list(docKeys.leaseResourcesPrefix(ns, id))) if (++n > this.maxResources) break;
    return n;
  }

  private async load(ns: string, id: string): Promise<LeaseRecord> {
    validateNamespace(ns);
    checkId(id);
    const record = await this.docs.read<LeaseRecord>(docKeys.lease(ns, id));
    if (!record) throw notFound(`lease ${JSON.stringify(id)}: not found`);
    return record;
  }
}

function scoped(ns: string, id: string): string {
  return `${ns}\0${id}`;
}

/** What a lease comes to in List's answer, at most: a Lease message (id, created_at, labels) in its repeated field. */
export function listedLeaseBytes(lease: Lease): number {
  return fieldBytes(fieldBytes(Buffer.byteLength(lease.id)) + TIMESTAMP_FIELD_BYTES + labelsEncodedBytes(lease.labels));
}

function toLease(record: LeaseRecord): Lease {
  return { id: record.id, createdAt: storedInstant(record.createdAt), labels: { ...record.labels } };
}
