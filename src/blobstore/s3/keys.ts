import { isValidDigest } from '../../digest.js';
import { invalidArgument } from '../../errors.js';
import type { S3StoreOptions } from './options.js';

/** Below the metadata prefix: uploads whose digest was not known up front (the collector tidies leftovers). */
export const STAGING_DOCS = 'staging/';

/**
 * Where everything lives in the bucket: blobs and cache records in BuildKit's s3-cache layout
 * (`<prefix><blobs_prefix><digest>`, `<prefix><manifests_prefix><name>`), the daemon's own
 * documents and staging uploads under its metadata prefix.
 *
 * BuildKit accepts any blobs and manifests prefixes, equal, nested or empty ones included, so
 * blobs, records and the daemon's documents may share one key space. They are told apart by
 * what each key is, in this order: a key under the metadata prefix is the daemon's (the
 * configuration keeps BuildKit's prefixes out of it, and no document key is a digest); a key
 * whose rest after the blobs prefix is a digest is a blob; anything else under the manifests
 * prefix is a record. A record name that would be read as one of the others is refused.
 */
export class KeyLayout {
  private readonly blobBase: string;
  private readonly recordBase: string;
  private readonly docBase: string;

  constructor(options: Pick<S3StoreOptions, 'prefix' | 'blobsPrefix' | 'manifestsPrefix' | 'metadataPrefix'>) {
    this.blobBase = options.prefix + options.blobsPrefix;
    this.recordBase = options.prefix + options.manifestsPrefix;
    this.docBase = options.prefix + options.metadataPrefix;
  }

  blob(digest: string): string {
    return this.blobBase + digest;
  }

  /** Where blobs are listed from; other kinds of keys may be found there too (digestOfKey). */
  blobListPrefix(): string {
    return this.blobBase;
  }

  /** The digest a blob's key names; undefined for a key that is not a blob's. */
  digestOfKey(key: string): string | undefined {
    if (!key.startsWith(this.blobBase) || this.isDocKey(key)) return undefined;
    const digest = key.slice(this.blobBase.length);
    return isValidDigest(digest) ? digest : undefined;
  }

  /** The key of a record; InvalidArgument for a name this layout would read as something else. */
  record(name: string): string {
    const problem = this.recordNameProblem(name);
    if (problem) throw invalidArgument(problem);
    return this.recordBase + name;
  }

  /** Why a record could not be stored under this name in this layout; undefined when it can. */
  recordNameProblem(name: string): string | undefined {
    const key = this.recordBase + name;
    const shown = JSON.stringify(name);
    if (this.isDocKey(key)) {
      return `record name ${shown} falls under the daemon's metadata prefix ${JSON.stringify(this.docBase)} in this bucket layout (choose another name, or another --metadata-prefix)`;
    }
    if (this.digestOfKey(key) !== undefined) {
      return `record name ${shown} would be read as a blob: its key ${JSON.stringify(key)} is a digest under the blobs prefix ${JSON.stringify(this.blobBase)} in this bucket layout`;
    }
    return undefined;
  }

  /** Where records are listed from; other kinds of keys may be found there too (recordNameOf). */
  recordListPrefix(): string {
    return this.recordBase;
  }

  /**
   * Record names at which blobs' keys lie among the records (equal, nested or empty prefixes):
   * `<…>sha256:0` to `<…>sha256:f`, one a first hex digit. Each is listed on its own, side by
   * side with the rest, so that no one listing walks every blob in the bucket. Empty where
   * records have a key space of their own.
   */
  recordShards(): string[] {
    return [...'0123456789abcdef'].map((h) => `${this.blobBase}sha256:${h}`).filter((key) => key.startsWith(this.recordBase)).map((key) => key.slice(this.recordBase.length));
  }

  /** Record names where the daemon's documents lie among the records (no record is there): a listing jumps past them. */
  documentsAmongRecords(): string | undefined {
    return this.docBase.startsWith(this.recordBase) ? this.docBase.slice(this.recordBase.length) : undefined;
  }

  /** The name of the record a key holds; undefined for a blob's key, a document's, or one outside. */
  recordNameOf(key: string): string | undefined {
    if (!key.startsWith(this.recordBase) || this.isDocKey(key) || this.digestOfKey(key) !== undefined) return undefined;
    return key.slice(this.recordBase.length);
  }

  doc(key: string): string {
    return this.docBase + key;
  }

  isDocKey(key: string): boolean {
    return key.startsWith(this.docBase);
  }

  staging(name: string): string {
    return this.doc(`${STAGING_DOCS}${name}`);
  }

  /** Keys an upload of this daemon may target: a blob's key, or its own staging area. */
  isUploadKey(key: string): boolean {
    return this.digestOfKey(key) !== undefined || key.startsWith(this.staging(''));
  }
}
