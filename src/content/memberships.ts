import { LRUCache } from 'lru-cache';
import pMap from 'p-map';
import type { BlobStat } from '../blobstore/types.js';
import { labelsLength, type Labels } from '../labels.js';
import { docKeys, type Documents } from '../metadata/documents.js';
import type { ContentInfo } from './types.js';
import { Instant, storedInstant } from '../clock.js';
import { countLookup } from '../metrics/registry.js';
import { countBound } from '../lru.js';

/** A blob's membership of one namespace, as stored in the metadata documents. */
export interface ContentRecord {
  size: number;
  createdAt: string;
  updatedAt: string;
  labels: Labels;
}

const RECORD_CACHE_MS = 30_000;
const RECORD_CACHE_BYTES = 32 * 1024 * 1024;
const MAX_KNOWN_NAMESPACES = 10_000;
/** Other namespaces' holds heldElsewhere reads at once. */
const HOLD_READS_AT_ONCE = 8;

/**
 * Which namespaces hold which blobs, with their labels: the membership records in the bucket's
 * metadata documents, and the namespaces that hold anything.
 */
export class Memberships {
  private readonly knownNamespaces = new Set<string>();
  /**
   * Recently read or written membership records (labels), present or absent, so Info does not
   * cost a GET every time. Entries expire after a short while, which bounds how long a label
   * change made through another daemon sharing the bucket can go unseen here.
   */
  private readonly records = new LRUCache<string, { value: ContentRecord | undefined }>({
    ttl: RECORD_CACHE_MS,
    // Bounded in bytes, an entry's overhead counted: one record may carry 256 labels of 4 KiB,
    // and most carry none (a bound by count would preallocate its index; see countBound).
    maxSize: RECORD_CACHE_BYTES,
    sizeCalculation: (entry, key) => 2 * key.length + 200 + (entry.value ? labelsLength(entry.value.labels) : 0),
  });
  /** Recently read deletion marks of a namespace (see markDeleted), present or absent. */
  private readonly deletions = new LRUCache<string, { deleted: boolean }>({ ...countBound(50_000), ttl: RECORD_CACHE_MS });
  /**
   * This daemon's own changes of a blob's hold or deletion mark in a namespace, numbered: a read
   * sent before one (a Read's look-up beside a Delete) answers its caller but is not cached over
   * what the change left, or the Delete would be undone here for the cache's 30 s. Kept as long
   * as an answer that old could still come back.
   */
  private readonly changes = new LRUCache<string, number>({ ...countBound(50_000), ttl: 2 * RECORD_CACHE_MS });
  private changed = 0;

  constructor(private readonly docs: Documents) {}

  /** `fresh` asks the bucket even when a recent answer is cached. */
  async read(ns: string, digest: string, options: { fresh?: boolean } = {}): Promise<ContentRecord | undefined> {
    const key = memberKey(ns, digest);
    const cached = options.fresh ? undefined : this.records.get(key);
    if (!options.fresh) countLookup('holds', cached !== undefined);
    if (cached) return cached.value;
    const asked = this.changed;
    const value = await this.docs.read<ContentRecord>(docKeys.content(ns, digest));
    if (this.unchangedSince(key, asked)) this.records.set(key, { value });
    return value;
  }

  private change(key: string): void {
    this.changes.set(key, ++this.changed);
  }

  private unchangedSince(key: string, asked: number): boolean {
    return (this.changes.get(key) ?? 0) <= asked;
  }

  /**
   * The hold as a writer about to rely on it needs it: from the bucket, except that an absence
   * this daemon saw within the cache's 30 s stands. A writer finding none writes one, so the
   * collector's protocol holds whatever the bucket holds by then (a hold another daemon wrote
   * within those 30 s has its labels replaced by the commit's, as one of two commits racing
   * would); a hold seen earlier may have been dropped since by another daemon's Delete, and one
   * that is not there protects nothing.
   */
  async readForWriter(ns: string, digest: string): Promise<ContentRecord | undefined> {
    const cached = this.records.get(memberKey(ns, digest));
    if (cached && cached.value === undefined) return undefined;
    return this.read(ns, digest, { fresh: true });
  }

  async write(ns: string, digest: string, record: ContentRecord): Promise<void> {
    // The namespace's record goes beside the hold rather than before it: the collector finds
    // holds through it, and no caller goes on (to read a reclaim note, or to answer) before both
    // are stored. Both land, or fail, before this returns, so a hold taken back after a failure
    // cannot be overtaken by its own write.
    const [named, held] = await Promise.allSettled([this.ensureNamespace(ns), this.docs.write(docKeys.content(ns, digest), record)]);
    if (held.status === 'rejected') throw held.reason;
    if (named.status === 'rejected') throw named.reason;
    this.change(memberKey(ns, digest));
    this.records.set(memberKey(ns, digest), { value: record });
  }

  async remove(ns: string, digest: string): Promise<void> {
    await this.docs.remove(docKeys.content(ns, digest));
    this.change(memberKey(ns, digest));
    this.records.set(memberKey(ns, digest), { value: undefined });
  }

  /**
   * `ns` deleted its hold of the blob: from now on Info and Read there answer NotFound, as
   * containerd does right after a Delete, unless something else still needs the bytes.
   */
  async markDeleted(ns: string, digest: string): Promise<void> {
    await this.docs.write(docKeys.deleted(ns, digest), { at: new Date().toISOString() });
    this.change(memberKey(ns, digest));
    this.deletions.set(memberKey(ns, digest), { deleted: true });
  }

  /** wasDeleted's answer when it is cached, without a promise (the Read path); else undefined. */
  knownDeleted(ns: string, digest: string): boolean | undefined {
    return this.deletions.get(memberKey(ns, digest))?.deleted;
  }

  /** Whether `ns` deleted its hold of the blob (and has not held it since, if it holds it now). */
  async wasDeleted(ns: string, digest: string): Promise<boolean> {
    const key = memberKey(ns, digest);
    const cached = this.deletions.get(key);
    if (cached) return cached.deleted;
    const asked = this.changed;
    const deleted = (await this.docs.read(docKeys.deleted(ns, digest))) !== undefined;
    if (this.unchangedSince(key, asked)) this.deletions.set(key, { deleted });
    return deleted;
  }

  /** Every membership record of `ns`, in digest order; `signal` stops the reading (CANCELLED). */
  async *all(ns: string, signal?: AbortSignal): AsyncIterable<{ digest: string; record: ContentRecord }> {
    const prefix = docKeys.contentPrefix(ns);
    for await (const { key, value } of this.docs.readAll<ContentRecord>(prefix, { signal })) yield { digest: key.slice(prefix.length), record: value };
  }

  /** Namespaces are listed so that sweeps and shared-blob checks can find their records. */
  async ensureNamespace(ns: string): Promise<void> {
    if (this.knownNamespaces.has(ns)) return;
    await this.docs.write(docKeys.namespace(ns), { name: ns });
    // a cache of markers written: past its bound it starts over (a marker written twice is harmless)
    if (this.knownNamespaces.size >= MAX_KNOWN_NAMESPACES) this.knownNamespaces.clear();
    this.knownNamespaces.add(ns);
  }

  /**
   * Every namespace with documents (holds, deletion marks, ingests, leases), found by a
   * delimiter listing of the documents themselves rather than by the namespace markers: a
   * daemon that marked a namespace before it was deleted does not mark it again, yet what it
   * writes there must be found.
   */
  namespaces(): AsyncIterable<string> {
    return this.docs.groups(docKeys.allNamespaces());
  }

  /** Forgets what this process learned of `ns`, which was just removed from the bucket. */
  forget(ns: string): void {
    this.knownNamespaces.delete(ns);
    const scope = `${ns}\0`;
    for (const key of [...this.records.keys()]) if (key.startsWith(scope)) this.records.delete(key);
    for (const key of [...this.deletions.keys()]) if (key.startsWith(scope)) this.deletions.delete(key);
  }

  /**
   * Whether a namespace other than `ns` holds the blob, read from the bucket (the holds this
   * process has cached are its own daemon's view only). The reads go side by side, a few at a
   * time: one after another, a bucket of many namespaces made each such answer take one round
   * trip a namespace. The first hold found answers; reads already sent are left to finish.
   */
  async heldElsewhere(ns: string, digest: string): Promise<boolean> {
    const found = new AbortController();
    try {
      await pMap(
        this.namespaces(),
        async (other) => {
          if (other !== ns && (await this.docs.read(docKeys.content(other, digest))) !== undefined) found.abort();
        },
        { concurrency: HOLD_READS_AT_ONCE, signal: found.signal },
      );
    } catch (err) {
      // a read failing beside the one that found a hold does not change the answer
      if (!found.signal.aborted) throw err;
    }
    return found.signal.aborted;
  }
}

/** The cache key of a blob's membership of a namespace. */
function memberKey(ns: string, digest: string): string {
  return `${ns}\0${digest}`;
}

export function toInfo(digest: string, stat: BlobStat, record: ContentRecord | undefined): ContentInfo {
  return {
    digest,
    size: stat.size,
    createdAt: record ? storedInstant(record.createdAt) : Instant.fromDate(stat.lastModified),
    updatedAt: record ? storedInstant(record.updatedAt) : Instant.fromDate(stat.lastModified),
    labels: record ? { ...record.labels } : {},
  };
}
