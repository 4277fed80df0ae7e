import type {
  BlobEntry,
  BlobStore,
  Checkpoint,
  CheckResult,
  DocEntry,
  PendingUpload,
  RecordPage,
  ReopenedCheckpoint,
  StoredDoc,
  StoredRecord,
  Upload,
  UploadHandle,
  UploadOptions,
} from '../types.js';

/**
 * What the read tier leaves to the store behind it: writes, records, documents and listings go
 * there unchanged (COMMIT answers once S3 has the blob, as without the tier).
 */
export abstract class PassingThrough {
  constructor(protected readonly inner: BlobStore) {}

  listBlobs(): AsyncIterable<BlobEntry> {
    return this.inner.listBlobs();
  }

  createUpload(options: UploadOptions): Upload {
    return this.inner.createUpload(options);
  }

  reopenCheckpoint(checkpoint: Checkpoint, read: (chunk: Buffer) => void, signal?: AbortSignal): Promise<ReopenedCheckpoint> {
    return this.inner.reopenCheckpoint(checkpoint, read, signal);
  }

  discardUpload(handle: UploadHandle): Promise<void> {
    return this.inner.discardUpload(handle);
  }

  listUploads(): AsyncIterable<PendingUpload> {
    return this.inner.listUploads();
  }

  touchBlob(digest: string, size: number): Promise<void> {
    return this.inner.touchBlob(digest, size);
  }

  getRecord(name: string, admit?: (bytes: number) => void): Promise<StoredRecord | undefined> {
    return this.inner.getRecord(name, admit);
  }

  streamRecord(name: string): Promise<AsyncIterable<Buffer> | undefined> {
    return this.inner.streamRecord(name);
  }

  putRecord(name: string, body: Buffer): Promise<void> {
    return this.inner.putRecord(name, body);
  }

  deleteRecord(name: string): Promise<boolean> {
    return this.inner.deleteRecord(name);
  }

  checkRecordName(name: string): void {
    this.inner.checkRecordName(name);
  }

  listRecords(prefix: string, startAfter: string, limit: number, options?: { outside?: readonly string[] }): Promise<RecordPage> {
    return this.inner.listRecords(prefix, startAfter, limit, options);
  }

  recordShards(): readonly string[] {
    return this.inner.recordShards();
  }

  getDoc(key: string): Promise<StoredDoc | undefined> {
    return this.inner.getDoc(key);
  }

  putDoc(key: string, body: Buffer): Promise<void> {
    return this.inner.putDoc(key, body);
  }

  deleteDoc(key: string, options?: { deadline?: number }): Promise<void> {
    return this.inner.deleteDoc(key, options);
  }

  listDocs(prefix: string, options?: { pageKeys?: number }): AsyncIterable<DocEntry> {
    return this.inner.listDocs(prefix, options);
  }

  listDocGroups(prefix: string): AsyncIterable<string> {
    return this.inner.listDocGroups(prefix);
  }

  uploadIdentity(handle: UploadHandle): string {
    return this.inner.uploadIdentity(handle);
  }

  onReachability(listener: (up: boolean) => void): void {
    this.inner.onReachability(listener);
  }

  check(): Promise<CheckResult> {
    return this.inner.check();
  }
}
