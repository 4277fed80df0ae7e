import type { S3StoreOptions } from './options.js';

/**
 * Where everything lives in the bucket: blobs and cache records in BuildKit's s3-cache layout
 * (`<prefix><blobs_prefix><digest>`, `<prefix><manifests_prefix><name>`), the daemon's own
 * documents and staging uploads under its metadata prefix.
 */
export class KeyLayout {
  constructor(private readonly options: Pick<S3StoreOptions, 'prefix' | 'blobsPrefix' | 'manifestsPrefix' | 'metadataPrefix'>) {}

  blob(digest: string): string {
    return `${this.options.prefix}${this.options.blobsPrefix}${digest}`;
  }

  /** The digest part of a key under the blob prefix. */
  digestOf(blobKey: string): string {
    return blobKey.slice(this.blob('').length);
  }

  record(name: string): string {
    return `${this.options.prefix}${this.options.manifestsPrefix}${name}`;
  }

  doc(key: string): string {
    return `${this.options.prefix}${this.options.metadataPrefix}${key}`;
  }

  staging(name: string): string {
    return this.doc(`staging/${name}`);
  }

  /** Keys an upload of this daemon may target: a blob key, or its own staging area. */
  isUploadKey(key: string): boolean {
    return key.startsWith(this.blob('')) || key.startsWith(this.staging(''));
  }
}
