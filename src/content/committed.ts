import type { BlobStore } from '../blobstore/types.js';
import { parseDigest } from '../digest.js';
import { invalidArgument, notFound, outOfRange } from '../errors.js';
import { parseFilters, type FieldLookup } from '../filters.js';
import { validateLabels, type Labels } from '../labels.js';
import { validateNamespace } from '../namespaces.js';
import { toInfo, type ContentRecord, type Memberships } from './memberships.js';
import { chunked, emptyChunks, type ReadChunk } from './read-chunks.js';
import type { ContentInfo } from './types.js';

/**
 * Committed blobs as a namespace sees them: Info, Update, List, Delete and Read. Bytes are
 * shared by digest, so any namespace can Info and Read a blob that exists; labels and
 * listings come from the namespace's membership records.
 */
export class CommittedContent {
  constructor(
    private readonly blobs: BlobStore,
    private readonly memberships: Memberships,
    /** The namespace whose List shows every blob in the store (see ContentStoreOptions). */
    private readonly bucketNamespace: string | undefined,
  ) {}

  async info(ns: string, digest: string): Promise<ContentInfo> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const [stat, record] = await Promise.all([this.blobs.statBlob(d), this.memberships.read(ns, d)]);
    if (!stat) throw notFound(`content ${d}: not found`);
    return toInfo(d, stat, record);
  }

  async update(ns: string, digest: string, labels: Labels, paths: readonly string[]): Promise<ContentInfo> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const [stat, record] = await Promise.all([this.blobs.statBlob(d), this.memberships.read(ns, d)]);
    if (!stat) throw notFound(`content ${d}: not found`);
    const now = new Date();
    const current = record ?? newRecord(stat.size, stat.lastModified);
    let next: Labels = { ...current.labels };
    if (paths.length === 0) next = { ...labels };
    for (const path of paths) {
      if (path === 'labels') {
        next = { ...labels };
      } else if (path.startsWith('labels.') && path.length > 'labels.'.length) {
        const key = path.slice('labels.'.length);
        const value = labels[key];
        if (value === undefined || value === '') delete next[key];
        else next[key] = value;
      } else {
        throw invalidArgument(`cannot update ${JSON.stringify(path)} field on content info ${d}`);
      }
    }
    for (const key of Object.keys(next)) if (next[key] === '') delete next[key];
    validateLabels(next, `content ${d}`);
    const updated: ContentRecord = { ...current, labels: next, updatedAt: now.toISOString() };
    await this.memberships.write(ns, d, updated);
    return toInfo(d, stat, updated);
  }

  async *list(ns: string, filters: readonly string[]): AsyncIterable<ContentInfo> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    if (ns === this.bucketNamespace) {
      // This namespace's own records give labels; the bucket listing gives the blobs.
      const own = new Map<string, ContentRecord>();
      for await (const { digest, record } of this.memberships.all(ns)) own.set(digest, record);
      for await (const blob of this.blobs.listBlobs()) {
        const info = toInfo(blob.digest, blob, own.get(blob.digest));
        if (filter.matches(contentFields(info))) yield info;
      }
      return;
    }
    for await (const { digest, record } of this.memberships.all(ns)) {
      const info = toInfo(digest, { size: record.size, lastModified: new Date(record.createdAt) }, record);
      if (filter.matches(contentFields(info))) yield info;
    }
  }

  async delete(ns: string, digest: string): Promise<void> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const [stat, record] = await Promise.all([this.blobs.statBlob(d), this.memberships.read(ns, d)]);
    if (!stat && !record) throw notFound(`content ${d}: not found`);
    if (record) await this.memberships.remove(ns, d);
    // The bytes go only when no other namespace still holds the blob.
    if (stat && !(await this.memberships.heldElsewhere(ns, d))) await this.blobs.deleteBlob(d);
  }

  /**
   * Validates a read and opens it. Bounds follow containerd: a negative offset reads from 0,
   * an offset past the end is OutOfRange, a size of 0 (or past the end) reads to the end.
   */
  async read(ns: string, digest: string, offset: number, size: number): Promise<AsyncIterable<ReadChunk>> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const stat = await this.blobs.statBlob(d);
    if (!stat) throw notFound(`content ${d}: not found`);
    const start = Math.max(0, offset);
    if (start > stat.size) throw outOfRange(`read of ${d} @${start}: read past object length ${stat.size}`);
    const end = size <= 0 || start + size > stat.size ? stat.size : start + size;
    if (end === start) return emptyChunks();
    const source = await this.blobs.readBlob(d, start, end - start, { size: stat.size });
    return chunked(source, start, end, d);
  }
}

function newRecord(size: number, created: Date): ContentRecord {
  return { size, createdAt: created.toISOString(), updatedAt: created.toISOString(), labels: {} };
}

function contentFields(info: ContentInfo): FieldLookup {
  return (path) => {
    if (path.length === 1 && path[0] === 'digest') return info.digest;
    if (path.length >= 2 && path[0] === 'labels') return info.labels[path.slice(1).join('.')];
    return undefined;
  };
}
