import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  HeadBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { LRUCache } from 'lru-cache';
import { notFound, unavailable } from '../../errors.js';
import { ByteBudget } from '../budget.js';
import { PartBuffers } from '../part-buffers.js';
import { SpillDir } from '../spill.js';
import type {
  BlobEntry,
  BlobStat,
  BlobStore,
  Cancellation,
  Checkpoint,
  CheckResult,
  DocEntry,
  PendingUpload,
  ReadSource,
  RecordPage,
  ReopenedCheckpoint,
  StoredDoc,
  StoredRecord,
  StoreUsage,
  Upload,
  UploadHandle,
  UploadOptions,
} from '../types.js';
import { READ_SOCKETS, S3Bucket, clientSockets, createS3Client, uploadsUnsigned } from './client.js';
import { copyObject } from './copy.js';
import { getSmallObject, objectVersion, streamRecordObject } from './whole-objects.js';
import { KeyLayout } from './keys.js';
import { listRecordPage } from './record-listing.js';
import { OpenRead, ReadAheadBudget } from './open-read.js';
import type { S3StoreOptions } from './options.js';
import { ParkedReads } from './parked-reads.js';
import { ReadSlots, type ReadSlotLimits } from './read-slots.js';
import { probeBucket, type ProbeTarget } from './probe.js';
import { Reachability } from './reachability.js';
import { S3Silence } from './silence.js';
import { reopenStagingCheckpoint } from './reopen.js';
import { S3Upload } from './upload.js';
import type { UploadContext } from './upload-context.js';
import { countLookup } from '../../metrics/registry.js';
import { countBound } from '../../lru.js';

/** The spill directory's bound, in multiples of --max-buffer. */
const SPILL_BUFFERS = 8;
/**
 * S3 responses Reads hold at once: below the read client's sockets, with room for sockets still
 * closing, so no GET queues for a socket (one that did would fail as S3 unreachable). A Read
 * waits at most 30 s for one; one whose client has taken nothing for 2 s gives its response up.
 */
/**
 * How long an upload's stream must have sent nothing before its unfinished part goes to disk for
 * a WRITE waiting for --max-buffer: well past the pauses of a client that is still sending.
 */
const IDLE_UPLOAD_MS = 5_000;
const READ_SLOTS: ReadSlotLimits = { max: READ_SOCKETS - 16, waitMs: 30_000, idleMs: 2_000, turnMs: 10_000 };

export class S3BlobStore implements BlobStore {
  readonly location: string;
  readonly remote = true;
  private readonly s3: S3Bucket;
  private readonly keys: KeyLayout;
  /** Size and age of blobs known to exist (bounded; entries expire so outside deletes show). */
  private readonly stats = new LRUCache<string, BlobStat>({ ...countBound(100_000), ttl: 10 * 60_000 });
  private readonly readers = new ParkedReads(64, 10_000);
  private readonly slots: ReadSlots;
  /** 1 MiB (one proxy Read) ahead per parked response, 32 MiB for all of them. */
  private readonly readAhead = new ReadAheadBudget(1024 * 1024, 32 * 1024 * 1024);
  private readonly reachability: Reachability;
  /** Holds the store's requests back while S3 is silent (none with a client given). */
  private readonly silence: { gate: S3Silence; probe: S3Client } | undefined;
  private readonly uploads: UploadContext;
  private readonly probeTarget: ProbeTarget;
  private readonly credentialsFrom: string | undefined;

  constructor(options: S3StoreOptions, client?: S3Client) {
    // a client given (tests count its requests) serves reads too, and is never held back
    const shared = clientSockets('default');
    if (client) {
      this.s3 = new S3Bucket(client, options);
    } else {
      let probe: S3Client | undefined;
      // bounded, so that a probe whose credentials or socket hang still settles, and is asked again
      const silence = new S3Silence(() => probe!.send(new HeadBucketCommand({ Bucket: options.bucket }), { abortSignal: AbortSignal.timeout(15_000) }));
      const links = { silence };
      const main = createS3Client(options, 'default', shared, links);
      probe = createS3Client(options, 'probe', undefined, { credentials: main.config.credentials });
      this.silence = { gate: silence, probe };
      this.s3 = new S3Bucket(main, options, createS3Client(options, 'reads', undefined, links), () => createS3Client(options, 'slow', undefined, links), createS3Client(options, 'slow', shared, links));
    }
    this.keys = new KeyLayout(options);
    this.slots = new ReadSlots({ ...READ_SLOTS, ...options.readSlots }, () => this.readers.closeOldest());
    this.reachability = new Reachability(this.s3);
    const budget = new ByteBudget(options.maxBuffer ?? 256 * 1024 ** 2, undefined, undefined, IDLE_UPLOAD_MS);
    this.uploads = {
      s3: this.s3,
      keys: this.keys,
      budget,
      // enough for one upload's parts to go round
      parts: new PartBuffers(options.partSize, Math.max(2, options.uploadParallelism)),
      // interrupted uploads may keep up to eight times what all uploads may hold in memory
      spill: new SpillDir(options.spillDir, SPILL_BUFFERS * (options.maxBuffer ?? 256 * 1024 ** 2)),
      partSize: options.partSize,
      uploadParallelism: options.uploadParallelism,
      remember: (digest, stat) => this.stats.set(digest, stat),
      reopening: new Set(),
    };
    const { bucket, region, endpoint } = options;
    this.probeTarget = { client: this.s3.client, bucket, region, endpoint, unsignedUploads: uploadsUnsigned(options), docKey: (name) => this.keys.doc(name) };
    this.credentialsFrom = options.credentialsFrom;
    const where = endpoint ? ` at ${endpoint}` : ` in ${region}`;
    this.location = `s3://${bucket}/${options.prefix}${where}`;
  }

  knownBlob(digest: string, counted = true): BlobStat | undefined {
    const known = this.stats.get(digest);
    // a miss is counted by the statBlob that follows it
    if (known && counted) countLookup('existence', true);
    return known;
  }

  async statBlob(digest: string, options: { fresh?: boolean } = {}): Promise<BlobStat | undefined> {
    // Blobs never change once stored, so a positive answer can be reused; a miss never is,
    // since another writer may store the blob at any moment.
    const known = options.fresh ? undefined : this.stats.get(digest);
    countLookup('existence', known !== undefined);
    if (known) return known;
    const stat = await this.head(this.keys.blob(digest));
    if (stat) this.stats.set(digest, stat);
    else {
      this.stats.delete(digest);
      this.reachability.verifyBucketSoon();
    }
    return stat;
  }

  private async head(key: string): Promise<BlobStat | undefined> {
    const out = await this.s3.sendUnlessMissing(new HeadObjectCommand({ Bucket: this.s3.name, Key: key }), `HEAD ${key}`);
    return out && { size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0) };
  }

  async readBlob(
    digest: string,
    offset: number,
    length: number,
    options: { size: number; cancel?: Cancellation | undefined },
  ): Promise<ReadSource> {
    const end = offset + length;
    let source = this.readers.take(digest, offset);
    if (!source) {
      const key = this.keys.blob(digest);
      // A read that stops short of the end is likely followed by the next one (containerd's proxy
      // turns every ReadAt into a Read): the rest of the object is asked for, so the next Read can
      // continue on this response, parked for it, rather than pay another round trip. A call
      // cancelled before its last bytes were taken closes it by leaving the iteration early (one
      // cancelled after leaves it parked, closed by a Read waiting for a socket or the sweep).
      source = new OpenRead(digest, offset, options.size, this.readAhead, {
        what: `GET ${key}`,
        slots: this.slots,
        open: (from) => this.openBody(digest, key, from),
        brokeOff: (err) => this.s3.brokeOff(err, `GET ${key}`),
      });
      await source.connect(options.cancel);
    }
    const opened = source;
    const done = () => {
      // parked responses hold sockets: one a Read waits for goes to it instead
      if (end < options.size && !this.slots.wanted) this.readers.park(opened);
      else opened.close();
    };
    return opened.takeHeld(length, done) ?? opened.take(length, done, options.cancel);
  }

  private async openBody(digest: string, key: string, from: number): Promise<Readable> {
    const get = new GetObjectCommand({ Bucket: this.s3.name, Key: key, Range: `bytes=${from}-` });
    const out = await this.s3.sendUnlessMissing(get, `GET ${key}`, 'reads');
    if (!out) {
      this.stats.delete(digest);
      throw notFound(`content ${digest}: not found`);
    }
    return out.Body as Readable;
  }

  async deleteBlob(digest: string, options: { deadline?: number } = {}): Promise<void> {
    this.stats.delete(digest);
    this.readers.drop(digest);
    try {
      await this.deleteBy(this.keys.blob(digest), options.deadline);
    } finally {
      this.stats.delete(digest); // a HEAD answered, or a GET opened, meanwhile would serve it on
      this.readers.drop(digest);
    }
  }

  private async deleteBy(key: string, deadline: number | undefined): Promise<void> {
    if (deadline === undefined) return this.s3.delete(key);
    const left = deadline - Date.now();
    if (left <= 0) throw unavailable(`DELETE ${key}: not sent, its deadline passed`);
    // no retry may land after the deadline: the whole call is cut off there
    await this.s3.delete(key, AbortSignal.timeout(left));
  }

  async *listBlobs(): AsyncIterable<BlobEntry> {
    // No digest holds a "/": keys below a further "/" (the daemon's documents, records in
    // folders, nested prefixes) are left unlisted rather than read and skipped one by one.
    for await (const obj of this.listKeys(this.keys.blobListPrefix(), '/')) {
      // records may share the prefix, and a bucket is shared space: only digests are blobs
      const digest = this.keys.digestOfKey(obj.key);
      if (digest !== undefined) yield { digest, size: obj.size, lastModified: obj.lastModified };
    }
  }

  createUpload(options: UploadOptions): Upload {
    return new S3Upload(this.uploads, options);
  }

  reopenCheckpoint(checkpoint: Checkpoint, read: (chunk: Buffer) => void, signal?: AbortSignal): Promise<ReopenedCheckpoint> {
    return reopenStagingCheckpoint(this.uploads, checkpoint, read, signal);
  }

  async *listUploads(): AsyncIterable<PendingUpload> {
    for (const [prefix, staging] of [
      [this.keys.staging(''), true],
      [this.keys.blobListPrefix(), false],
    ] as const) {
      // The SDK has no paginator for ListMultipartUploads (it pages on two markers at once).
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const out = await this.s3.send(
          new ListMultipartUploadsCommand({
            Bucket: this.s3.name,
            Prefix: prefix,
            ...(keyMarker ? { KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker } : {}),
          }),
          `list multipart uploads under ${prefix}`,
        );
        for (const u of out.Uploads ?? []) {
          if (!u.Key || !u.UploadId || this.uploads.reopening.has(u.UploadId)) continue;
          // under shared prefixes, records' and staging uploads show here too: only a blob's are this list's
          if (!staging && this.keys.digestOfKey(u.Key) === undefined) continue;
          yield { handle: { key: u.Key, uploadId: u.UploadId }, startedAt: u.Initiated ?? new Date(0), staging };
        }
        const more = Boolean(out.IsTruncated) && out.NextKeyMarker !== undefined;
        keyMarker = more ? out.NextKeyMarker : undefined;
        uploadIdMarker = more ? out.NextUploadIdMarker : undefined;
      } while (keyMarker);
    }
  }

  async discardUpload(handle: UploadHandle): Promise<void> {
    const { key, uploadId } = handle;
    if (typeof key !== 'string' || typeof uploadId !== 'string' || !this.keys.isUploadKey(key)) return;
    await this.s3.sendUnlessMissing(
      new AbortMultipartUploadCommand({ Bucket: this.s3.name, Key: key, UploadId: uploadId }),
      `abort multipart upload of ${key}`,
      'slow',
    );
  }

  async touchBlob(digest: string, size: number): Promise<void> {
    const key = this.keys.blob(digest);
    // As BuildKit does: a self-copy that replaces metadata, which S3 counts as a new write.
    await copyObject(this.s3, key, key, size, { 'updated-at': new Date().toISOString() });
  }

  checkRecordName(name: string): void {
    this.keys.record(name);
  }

  async getRecord(name: string, admit?: (bytes: number) => void): Promise<StoredRecord | undefined> {
    const got = await getSmallObject(this.s3, this.keys.record(name), admit);
    return got && { body: got.body, lastModified: got.lastModified, version: objectVersion(got.etag, got.body.length) };
  }

  streamRecord(name: string): Promise<AsyncIterable<Buffer> | undefined> {
    return streamRecordObject(this.s3, this.keys.record(name));
  }

  async putRecord(name: string, body: Buffer): Promise<void> {
    await this.s3.put(this.keys.record(name), body);
  }

  async deleteRecord(name: string): Promise<boolean> {
    const key = this.keys.record(name);
    if (!(await this.head(key))) return false;
    await this.s3.delete(key);
    return true;
  }

  listRecords(prefix: string, startAfter: string, limit: number, options: { outside?: readonly string[] } = {}): Promise<RecordPage> {
    return listRecordPage(this.s3, this.keys, { prefix, startAfter, limit, outside: options.outside });
  }

  recordShards(): string[] {
    return this.keys.recordShards();
  }

  async getDoc(key: string): Promise<StoredDoc | undefined> {
    const got = await getSmallObject(this.s3, this.keys.doc(key));
    return got && { body: got.body, version: objectVersion(got.etag, got.body.length) };
  }

  async putDoc(key: string, body: Buffer): Promise<void> {
    await this.s3.put(this.keys.doc(key), body);
  }

  async deleteDoc(key: string, options: { deadline?: number } = {}): Promise<void> {
    await this.deleteBy(this.keys.doc(key), options.deadline);
  }

  async *listDocs(prefix: string, options: { pageKeys?: number } = {}): AsyncIterable<DocEntry> {
    const base = this.keys.doc('');
    for await (const obj of this.listKeys(base + prefix, undefined, options.pageKeys)) yield { key: obj.key.slice(base.length), version: objectVersion(obj.etag, obj.size) };
  }

  async *listDocGroups(prefix: string): AsyncIterable<string> {
    const base = this.keys.doc(prefix);
    try {
      for await (const page of paginateListObjectsV2({ client: this.s3.client }, { Bucket: this.s3.name, Prefix: base, Delimiter: '/' })) {
        for (const common of page.CommonPrefixes ?? []) {
          if (common.Prefix?.endsWith('/')) yield common.Prefix.slice(base.length, -1);
        }
      }
    } catch (err) {
      throw this.s3.failure(err, `LIST ${base} (by /)`);
    }
  }

  private async *listKeys(
    prefix: string,
    delimiter?: string,
    pageKeys?: number,
  ): AsyncIterable<{ key: string; size: number; lastModified: Date; etag?: string | undefined }> {
    try {
      const input = { Bucket: this.s3.name, Prefix: prefix, ...(delimiter ? { Delimiter: delimiter } : {}), ...(pageKeys ? { MaxKeys: pageKeys } : {}) };
      for await (const page of paginateListObjectsV2({ client: this.s3.client }, input)) {
        for (const obj of page.Contents ?? []) {
          if (obj.Key === undefined) continue;
          yield { key: obj.Key, size: obj.Size ?? 0, lastModified: obj.LastModified ?? new Date(0), etag: obj.ETag };
        }
      }
    } catch (err) {
      throw this.s3.failure(err, `LIST ${prefix}`);
    }
  }

  uploadIdentity(handle: UploadHandle): string {
    return typeof handle.uploadId === 'string' ? handle.uploadId : JSON.stringify(handle);
  }

  usage(): StoreUsage {
    const { budget } = this.uploads;
    return {
      uploadBuffer: { inUse: budget.inUse, limit: budget.limit },
      readAhead: { inUse: this.readAhead.used, limit: this.readAhead.total },
    };
  }

  async check(): Promise<CheckResult> {
    const result = await probeBucket(this.probeTarget, this.credentialsFrom);
    return {
      credentials: result.credentials,
      summary: `bucket: ${this.location}: put, head, get and delete of a probe object ok (${result.ms} ms)`,
      ms: result.ms,
    };
  }

  /** Called with false when S3 stops answering, and with true once it answers again. */
  onReachability(listener: (up: boolean) => void): void {
    this.reachability.onChange(listener);
  }

  async close(): Promise<void> {
    this.reachability.close();
    this.silence?.gate.close();
    this.silence?.probe.destroy();
    this.readers.closeAll();
    this.slots.close();
    this.uploads.budget.holders?.close();
    this.s3.destroy();
    await this.uploads.spill.close();
  }
}
