import { LRUCache } from 'lru-cache';
import type { BlobStat, BlobStore, Cancellation, ReadSource } from '../blobstore/types.js';
import { parseDigest } from '../digest.js';
import { failedPrecondition, invalidArgument, notFound, outOfRange } from '../errors.js';
import { parseFilters, type FieldLookup } from '../filters.js';
import { labelValue, validateLabels, type Labels } from '../labels.js';
import { validateNamespace } from '../namespaces/names.js';
import { toInfo, type ContentRecord, type Memberships } from './memberships.js';
import { chunked, chunkedPieces, type MessageSize, type ReadChunks } from './read-chunks.js';
import type { Claims } from './claims.js';
import type { ContentInfo, References } from './types.js';
import { Instant, now } from '../clock.js';
import { KeyedTurns } from '../keyed-turns.js';
import { countBound } from '../lru.js';

/** How long a yes of References.neededOutside stands: as long as other cached answers here. */
const NEEDED_OUTSIDE_MS = 30_000;
const NEEDED_OUTSIDE_DIGESTS = 10_000;

/** Namespaces that see the store otherwise than by their holds (see ContentStoreOptions). */
export interface NamespaceViews {
  /** Its List shows every blob in the store. */
  bucketNamespace: string | undefined;
  /** It sees only the blobs it holds. */
  heldOnlyNamespace: string | undefined;
}

/**
 * Committed blobs as a namespace sees them: Info, Update, List, Delete and Read. Bytes are
 * shared by digest, so any namespace but the held-only one can Info and Read a blob that
 * exists; labels and listings come from the namespace's membership records (its holds).
 * Delete drops the namespace's hold and never the bytes: the collector reclaims those once
 * nothing needs them.
 */
export class CommittedContent {
  /**
   * Updates of one hold run one at a time: each writes the whole hold back. Clients pulling one
   * image at once all label its manifest and config, and containerd does not retry an Update:
   * a deeper queue than other keys get.
   */
  private readonly updates = new KeyedTurns(64);
  private readonly bucketNamespace: string | undefined;
  private readonly heldOnlyNamespace: string | undefined;
  /**
   * Blobs something outside a namespace that deleted its hold was found to need, by digest, with
   * the namespaces that asked: `ctr content get` makes a Read call per 32 KiB, and each asked
   * the bucket again (a listing of the namespaces, and their holds of it). A no is not kept: a
   * client told NotFound stops reading, and a hold this daemon writes next must show at once.
   * A Delete here drops the digest's entry, so only a change made through another daemon (or a
   * lease or cache record's end) can take up to the 30 s to show, as for labels and holds.
   */
  /** Deletes of holds through this daemon so far: a yes asked for before one is not kept. */
  private deletes = 0;
  private readonly neededOutsideKnown = new LRUCache<string, ReadonlySet<string>>({
    ...countBound(NEEDED_OUTSIDE_DIGESTS),
    ttl: NEEDED_OUTSIDE_MS,
    // a namespace asking later does not prolong the others' yes
    noUpdateTTL: true,
  });

  /**
   * Questions to the bucket under way, by the Delete count, namespace and digest they were asked
   * at: a client asking for a deleted blob many times at once (Info after Info, a Read per 32 KiB)
   * costs one namespace listing and one read per namespace, not that many times over. An entry
   * lives only while its question is under way, so their number is bounded by the calls in flight.
   */
  private readonly neededOutsideAsking = new Map<string, Promise<boolean>>();

  constructor(
    private readonly blobs: BlobStore,
    private readonly memberships: Memberships,
    /** Shared with the Writes' COMMITs: an Update's hold is a claim of the blob like theirs. */
    private readonly claims: Claims,
    private readonly references: References,
    views: NamespaceViews,
  ) {
    this.bucketNamespace = views.bucketNamespace;
    this.heldOnlyNamespace = views.heldOnlyNamespace;
  }

  async info(ns: string, digest: string): Promise<ContentInfo> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const { stat, record } = await this.lookup(ns, d);
    return toInfo(d, stat, record);
  }

  /**
   * The stored blob and `ns`'s hold of it, asked together. NotFound when it is not stored, and
   * in a namespace that deleted its hold unless something else still needs the bytes (then
   * they read like any shared blob).
   */
  private async lookup(
    ns: string,
    digest: string,
    needRecord = true,
    fresh = false,
  ): Promise<{ stat: BlobStat; record: ContentRecord | undefined }> {
    if (ns === this.heldOnlyNamespace) {
      // containerd's sharing takes what Info finds without writing it: a blob this namespace
      // does not hold must not be found, so that containerd writes it and so holds it.
      const [stat, record] = await Promise.all([this.blobs.statBlob(digest), this.memberships.read(ns, digest, { fresh })]);
      if (!stat || !record) throw notFound(`content ${digest}: not found`);
      return { stat, record };
    }
    const [stat, held, deleted] = await Promise.all([
      this.blobs.statBlob(digest),
      // a Read needs the hold only to tell a deletion apart from a later hold
      needRecord ? this.memberships.read(ns, digest, { fresh }) : undefined,
      ns === this.bucketNamespace ? false : this.memberships.wasDeleted(ns, digest),
    ]);
    const record = held ?? (deleted && !needRecord ? await this.memberships.read(ns, digest) : undefined);
    if (!stat || (deleted && !record && !(await this.neededOutside(ns, digest)))) {
      throw notFound(`content ${digest}: not found`);
    }
    return { stat, record };
  }

  private async neededOutside(ns: string, digest: string): Promise<boolean> {
    if (this.neededOutsideKnown.get(digest)?.has(ns)) return true;
    // asked after a Delete here: a question from before it may count the hold it dropped
    const key = `${this.deletes}\0${ns}\0${digest}`;
    let asking = this.neededOutsideAsking.get(key);
    if (!asking) {
      asking = this.askNeededOutside(ns, digest).finally(() => this.neededOutsideAsking.delete(key));
      this.neededOutsideAsking.set(key, asking);
    }
    return asking;
  }

  private async askNeededOutside(ns: string, digest: string): Promise<boolean> {
    // a Delete here while the bucket was asked may have dropped the hold that answered yes
    const deletesBefore = this.deletes;
    const needed = await this.references.neededOutside(ns, digest);
    if (needed && this.deletes === deletesBefore) this.neededOutsideKnown.set(digest, new Set([...(this.neededOutsideKnown.get(digest) ?? []), ns]));
    return needed;
  }

  /**
   * What lookup would find for a Read, when the caches know all of it: the blob stored, and the
   * namespace known not to have deleted it, or the bytes known to be needed outside it.
   * `ctr content get` makes a Read call per 32 KiB, and the promises of a lookup answered from
   * caches were a good part of each call's garbage.
   */
  private knownReadable(ns: string, digest: string): BlobStat | undefined {
    if (ns === this.heldOnlyNamespace) return undefined;
    if (ns !== this.bucketNamespace && this.memberships.knownDeleted(ns, digest) !== false && !this.neededOutsideKnown.get(digest)?.has(ns)) {
      return undefined;
    }
    return this.blobs.knownBlob?.(digest);
  }

  async update(ns: string, digest: string, labels: Labels, paths: readonly string[], signal?: AbortSignal): Promise<ContentInfo> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    return this.updates.run(
      `${ns}\0${d}`,
      `content ${d} in namespace ${ns}`,
      () => this.claims.underWay(ns, d, () => this.updateNow(ns, d, labels, paths)),
      signal,
    );
  }

  private async updateNow(ns: string, d: string, labels: Labels, paths: readonly string[]): Promise<ContentInfo> {
    // The whole hold is written back: read from the bucket, not from the cache (up to 30 s
    // old), or an Update here would undo labels another daemon set meanwhile.
    const { stat, record } = await this.lookup(ns, d, true, true);
    const changed = now();
    const current = record ?? newRecord(stat.size, Instant.fromDate(stat.lastModified));
    // A Map, so that a key like "__proto__" is a label like any other.
    let next = new Map(Object.entries(current.labels));
    const given = () => new Map(Object.entries(labels));
    if (paths.length === 0) next = given();
    for (const path of paths) {
      if (path === 'labels') {
        next = given();
      } else if (path.startsWith('labels.') && path.length > 'labels.'.length) {
        const key = path.slice('labels.'.length);
        const value = labelValue(labels, key);
        if (value === undefined || value === '') next.delete(key);
        else next.set(key, value);
      } else {
        throw invalidArgument(`cannot update ${JSON.stringify(path)} field on content info ${d}`);
      }
    }
    for (const [key, value] of next) if (value === '') next.delete(key);
    const nextLabels: Labels = Object.fromEntries(next);
    validateLabels(nextLabels, `content ${d}`);
    const updated: ContentRecord = { ...current, labels: nextLabels, updatedAt: changed.toISOString() };
    // Labelling makes the namespace hold the blob: written first, then the collector is asked.
    await this.memberships.write(ns, d, updated);
    // Asked even when a hold was cached: another daemon may have dropped it meanwhile. Where the
    // bytes go (or the note cannot be read) only a hold this Update created is taken back, and
    // not from under a COMMIT of the blob here that wrote it too and stores the bytes again.
    if (!(await this.claims.heldStays(ns, d, record === undefined))) throw notFound(`content ${d}: not found`);
    return toInfo(d, stat, updated);
  }

  async *list(ns: string, filters: readonly string[]): AsyncIterable<ContentInfo> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    if (ns === this.bucketNamespace) {
      // This namespace's own records give labels; the bucket listing gives the blobs. Both come
      // in key order, which is digest order, so they are walked side by side: read into a map
      // first, records a client gave labels of up to 1 MiB each by Update were all in memory.
      const own = this.memberships.all(ns)[Symbol.asyncIterator]();
      try {
        let next = await own.next();
        for await (const blob of this.blobs.listBlobs()) {
          while (!next.done && next.value.digest < blob.digest) next = await own.next();
          const record = !next.done && next.value.digest === blob.digest ? next.value.record : undefined;
          const info = toInfo(blob.digest, blob, record);
          if (filter.matches(contentFields(info))) yield info;
        }
      } finally {
        await own.return?.();
      }
      return;
    }
    for await (const { digest, record } of this.memberships.all(ns)) {
      const info = toInfo(digest, { size: record.size, lastModified: new Date(record.createdAt) }, record);
      if (filter.matches(contentFields(info))) yield info;
    }
  }

  /**
   * Drops `ns`'s hold of the blob. The bytes stay for whatever else needs them (another
   * namespace, a cache record BuildKit reads, a lease); the collector reclaims them once
   * nothing does. A namespace that does not hold the blob has nothing to delete.
   */
  async delete(ns: string, digest: string): Promise<void> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    if (ns === this.bucketNamespace) {
      throw failedPrecondition(
        `content ${d}: namespace ${JSON.stringify(ns)} lists every blob in the store and holds none; delete from a namespace that holds it (the collector reclaims what nothing needs)`,
      );
    }
    if (ns === this.heldOnlyNamespace) {
      // containerd's collector deletes what it just listed and stops at the first error: the
      // hold is read from the bucket, not from a cache another daemon's writes may have
      // outdated. No deletion mark: without a hold, this namespace sees nothing anyway.
      if (!(await this.memberships.read(ns, d, { fresh: true }))) throw notFound(`content ${d}: not found`);
      await this.memberships.remove(ns, d);
      // the hold gone may be what other namespaces that deleted theirs were reading by
      this.deletes++;
      this.neededOutsideKnown.delete(d);
      return;
    }
    const record = await this.memberships.read(ns, d);
    if (!record) throw notFound(`content ${d}: not found`);
    // The deletion mark first: once the hold is gone, Info here must not find the bytes.
    await this.memberships.markDeleted(ns, d);
    await this.memberships.remove(ns, d);
    this.deletes++;
    this.neededOutsideKnown.delete(d);
  }

  /**
   * Validates a read and opens it. Bounds follow containerd: a negative offset reads from 0,
   * an offset past the end is OutOfRange, a size of 0 (or past the end) reads to the end.
   * `cancel`: the client went away; a read waiting for the store gives its place up.
   * `messageSize`: how large each message may be (the transport's bound on what Reads hold).
   */
  async read(ns: string, digest: string, offset: number, size: number, cancel?: Cancellation, messageSize?: MessageSize): Promise<ReadChunks> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const stat = this.knownReadable(ns, d) ?? (await this.lookup(ns, d, false)).stat;
    const start = Math.max(0, offset);
    if (start > stat.size) throw outOfRange(`read of ${d} @${start}: read past object length ${stat.size}`);
    const end = size <= 0 || start + size > stat.size ? stat.size : start + size;
    if (end === start) return [];
    const source = await this.blobs.readBlob(d, start, end - start, { size: stat.size, cancel });
    return isPieces(source) ? chunkedPieces(source, start, end, d, messageSize) : chunked(source, start, end, d, messageSize);
  }
}

/** Array.isArray narrows a readonly array type poorly. */
function isPieces(source: ReadSource): source is readonly Buffer[] {
  return Array.isArray(source);
}

function newRecord(size: number, created: Instant): ContentRecord {
  return { size, createdAt: created.toISOString(), updatedAt: created.toISOString(), labels: {} };
}

function contentFields(info: ContentInfo): FieldLookup {
  return (path) => {
    if (path.length === 1 && path[0] === 'digest') return info.digest;
    if (path.length >= 2 && path[0] === 'labels') return labelValue(info.labels, path.slice(1).join('.'));
    return undefined;
  };
}
