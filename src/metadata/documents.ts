import { pMapIterable, pMapSkip } from 'p-map';
import type { BlobStore, DocEntry } from '../blobstore/types.js';
import { isStoreError, stopIfCancelled } from '../errors.js';
import { VersionedMemory } from './versioned-memory.js';

/**
 * One key segment from a client's string: URI-encoded, dots included, so that no segment is
 * `.` or `..` or ends like the local store's temporary files.
 */
export function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/\./g, '%2E');
}

/**
 * The daemon's own records, as small JSON documents under the store's metadata prefix. The
 * layout is versioned so a later format can live beside this one:
 *
 *   v1/namespaces/<ns>                     a namespace created, or that has held something, until deleted
 *   v1/namespace-labels/<ns>               a namespace's labels (apart, so writers marking the
 *                                          namespace above never overwrite them)
 *   v1/ns/<ns>/content/<digest>            a blob's membership of <ns>: size, times, labels
 *   v1/ns/<ns>/ingests/<encoded ref>       an ingest with durable bytes (for status and cleanup)
 *   v1/ns/<ns>/deleted/<digest>            <ns> deleted its hold of the blob (Info there answers
 *                                          NotFound unless something else still needs the bytes)
 *   v1/reclaim/<digest>                    the collector found the blob unreferenced (reclaim-marks.ts)
 *   v1/gc-lock                             the deleting collector of the bucket, and until when
 *   v1/ns/<ns>/leases/<encoded id>         a lease: id, creation time, labels (resources, in
 *                                          documents written before resources had their own)
 *   v1/ns/<ns>/lease-resources/<encoded id>/<encoded type>/<encoded resource id>
 *                                          one resource of a lease (empty)
 *
 * Refs and lease ids are encoded (encodeSegment), so no client string can add a path segment.
 */
export const docKeys = {
  namespace: (ns: string) => `v1/namespaces/${ns}`,
  namespacesPrefix: () => 'v1/namespaces/',
  namespaceLabels: (ns: string) => `v1/namespace-labels/${ns}`,
  namespaceLabelsPrefix: () => 'v1/namespace-labels/',
  /** Everything of one namespace but its marker and labels. */
  inNamespace: (ns: string) => `v1/ns/${ns}/`,
  /** Below it, one group per namespace that has any document. */
  allNamespaces: () => 'v1/ns/',
  content: (ns: string, digest: string) => `v1/ns/${ns}/content/${digest}`,
  contentPrefix: (ns: string) => `v1/ns/${ns}/content/`,
  deleted: (ns: string, digest: string) => `v1/ns/${ns}/deleted/${digest}`,
  deletedPrefix: (ns: string) => `v1/ns/${ns}/deleted/`,
  reclaim: (digest: string) => `v1/reclaim/${digest}`,
  reclaimPrefix: () => 'v1/reclaim/',
  gcLock: () => 'v1/gc-lock',
  ingest: (ns: string, ref: string) => `v1/ns/${ns}/ingests/${encodeSegment(ref)}`,
  /** Where records of refs with dots were kept before dots were encoded too (still read and removed). */
  legacyIngest: (ns: string, ref: string) => `v1/ns/${ns}/ingests/${encodeURIComponent(ref)}`,
  ingestsPrefix: (ns: string) => `v1/ns/${ns}/ingests/`,
  lease: (ns: string, id: string) => `v1/ns/${ns}/leases/${encodeURIComponent(id)}`,
  leasesPrefix: (ns: string) => `v1/ns/${ns}/leases/`,
  leaseResource: (ns: string, id: string, type: string, resource: string) =>
    `v1/ns/${ns}/lease-resources/${encodeSegment(id)}/${encodeSegment(type)}/${encodeSegment(resource)}`,
  leaseResourcesPrefix: (ns: string, id: string) => `v1/ns/${ns}/lease-resources/${encodeSegment(id)}/`,
  allLeaseResourcesPrefix: (ns: string) => `v1/ns/${ns}/lease-resources/`,
};

export interface DocumentsOptions {
  /**
   * Bytes of what readAll read to keep, so that it answers a document the listing shows unchanged
   * without a GET (0: none). See VersionedMemory.
   */
  keepListedBytes?: number;
  /** How long a document kept stays once no listing finds it (an hour unless given). */
  keptForMs?: number;
}

/** GETs one readAll has in flight. */
const READ_AT_ONCE = 16;
/**
 * What the content store and the collector each keep of the documents they listed: some
 * 35,000 holds without labels.
 */
export const LISTED_KEPT_BYTES = 16 * 1024 * 1024;
/** How long what a listing read stays, where nothing says how far apart listings come. */
export const LISTED_KEPT_FOR_MS = 3_600_000;

export class Documents {
  /**
   * Documents readAll read, by key, with their versions: a namespace listed twice, or the
   * collector's next scan, costs its listing and the GETs of what changed.
   */
  private readonly listed: VersionedMemory<string> | undefined;

  constructor(
    private readonly store: BlobStore,
    options: DocumentsOptions = {},
  ) {
    const bytes = options.keepListedBytes ?? 0;
    this.listed = bytes > 0 ? new VersionedMemory(bytes, 'documents', options.keptForMs ?? LISTED_KEPT_FOR_MS) : undefined;
  }

  async read<T>(key: string): Promise<T | undefined> {
    const got = await this.store.getDoc(key);
    return got && parsed<T>(got.body.toString('utf8'));
  }

  /** A read for a listing: what it finds is kept. */
  private async readListed<T>(key: string): Promise<T | undefined> {
    const got = await this.store.getDoc(key);
    if (got === undefined) {
      this.listed?.forget(key);
      return undefined;
    }
    const text = got.body.toString('utf8');
    this.listed?.keep(key, got.version, text, 2 * text.length);
    return parsed<T>(text);
  }

  /** Whether a document is there, whatever it holds (one that will not parse, or is too large to read, too). */
  async present(key: string): Promise<boolean> {
    try {
      return (await this.store.getDoc(key)) !== undefined;
    } catch (err) {
      if (isStoreError(err, 'resource-exhausted')) return true;
      throw err;
    }
  }

  async write(key: string, value: unknown): Promise<void> {
    // what is kept would not pass a listing's check any longer: let go of it at once
    this.listed?.forget(key);
    await this.store.putDoc(key, Buffer.from(JSON.stringify(value)));
  }

  /** `deadline`: see BlobStore.deleteDoc. */
  async remove(key: string, options?: { deadline?: number }): Promise<void> {
    this.listed?.forget(key);
    await this.store.deleteDoc(key, options);
  }

  /** `pageKeys`: see BlobStore.listDocs. */
  async *list(prefix: string, options?: { pageKeys?: number }): AsyncIterable<string> {
    for await (const entry of this.store.listDocs(prefix, options)) yield entry.key;
  }

  /** The key segments right below `prefix` (ending in `/`) that have documents under them. */
  groups(prefix: string): AsyncIterable<string> {
    return this.store.listDocGroups(prefix);
  }

  /** Whether any document lies under `prefix` (one listing request, of one key). */
  async any(prefix: string): Promise<boolean> {
    for await (const _ of this.store.listDocs(prefix, { pageKeys: 1 })) return true;
    return false;
  }

  /**
   * Reads the documents under `prefix`, READ_AT_ONCE at a time, in key order; with `wanted`,
   * only those whose key it takes (a key costs nothing to look at, a document a GET). One kept
   * with the version the listing shows is not read again (see `listed`), unless `fresh`: where
   * what a document says decides a deletion, and a listing that lags behind the bucket (Swift's
   * do) would have the memory answer an older document than a GET. `signal`: the caller went
   * away; no further page is listed and no further document read (CANCELLED).
   */
  readAll<T>(
    prefix: string,
    options: { wanted?: (key: string) => boolean; fresh?: boolean; signal?: AbortSignal } = {},
  ): AsyncIterable<{ key: string; value: T }> {
    const { wanted, fresh = false, signal } = options;
    const what = `the reading of the documents under ${prefix}`;
    const listed = this.store.listDocs(prefix);
    const entries = signal ? untilCancelled(listed, signal, what) : listed;
    return pMapIterable(
      wanted ? only(entries, wanted) : entries,
      async ({ key, version }) => {
        // the reads run ahead of what the caller has taken: each asks before its GET
        stopIfCancelled(signal, what);
        if (fresh) {
          const value = await this.read<T>(key);
          return value === undefined ? pMapSkip : { key, value };
        }
        const kept = this.listed?.get(key, version);
        const value = kept !== undefined ? parsed<T>(kept) : await this.readListed<T>(key);
        return value === undefined ? pMapSkip : { key, value };
      },
      { concurrency: READ_AT_ONCE },
    );
  }
}

function parsed<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    // A document we cannot parse was not written by this daemon's format; treat it as absent
    // rather than failing every call that touches it.
    return undefined;
  }
}

async function* untilCancelled(entries: AsyncIterable<DocEntry>, signal: AbortSignal, what: string): AsyncIterable<DocEntry> {
  for await (const entry of entries) {
    stopIfCancelled(signal, what);
    yield entry;
  }
}

async function* only(entries: AsyncIterable<DocEntry>, wanted: (key: string) => boolean): AsyncIterable<DocEntry> {
  for await (const entry of entries) if (wanted(entry.key)) yield entry;
}
