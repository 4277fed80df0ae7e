import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { StoreError, failedPrecondition, notFound, unavailable } from '../errors.js';
import { ByteBudget } from './budget.js';
import { PartBuffers } from './part-buffers.js';
import { LRUCache } from 'lru-cache';
import { isValidDigest } from '../digest.js';
import type { S3StoreOptions } from './s3/options.js';
import { probeBucket } from './s3-probe.js';
import type {
  BlobEntry,
  CheckResult,
  StoreUsage,
  BlobStat,
  BlobStore,
  Checkpoint,
  PendingUpload,
  RecordEntry,
  Upload,
  UploadHandle,
  UploadOptions,
} from './types.js';

/** The first buffer of an upload of unknown size; it doubles as the blob turns out larger. */
const MIN_PART_BUFFER = 256 * 1024;

/** S3 refuses single copies of 5 GiB and more; larger objects are copied part by part. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;
const COPY_PART_SIZE = 1024 ** 3;

export function createS3Client(options: S3StoreOptions): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: 128 };
  return new S3Client({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    // Non-AWS stores (MinIO, Ceph, Swift) want path-style addressing whenever an endpoint is given.
    forcePathStyle: options.usePathStyle ?? Boolean(options.endpoint),
    // The SDK's default streams bodies aws-chunked with trailing checksums, which S3-compatible
    // stores refuse (Swift answers 501); we verify digests ourselves anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: options.maxAttempts ?? 3,
    // Without keys from the daemon's own config file, the SDK's default provider chain of this
    // process (env, profiles, web identity, container and instance roles) is the only source;
    // the SDK refreshes temporary credentials before they expire.
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 10_000,
    }),
  });
}

export type { S3StoreOptions };

export class S3BlobStore implements BlobStore {
  readonly location: string;
  readonly client: S3Client;
  /** Size and age of blobs known to exist (bounded; entries expire so outside deletes show). */
  private readonly stats = new LRUCache<string, BlobStat>({ max: 100_000, ttl: 10 * 60_000 });
  private readonly readers = new ParkedReads(64, 10_000);
  /** 1 MiB (one proxy Read) ahead per parked response, 32 MiB for all of them. */
  private readonly readAhead = new ReadAheadBudget(1024 * 1024, 32 * 1024 * 1024);
  readonly budget: ByteBudget;
  readonly parts: PartBuffers;
  private reachable = true;
  private probing: NodeJS.Timeout | undefined;
  private readonly reachabilityListeners: ((up: boolean) => void)[] = [];

  constructor(
    readonly options: S3StoreOptions,
    client?: S3Client,
  ) {
    this.client = client ?? createS3Client(options);
    this.budget = new ByteBudget(options.maxBuffer ?? 256 * 1024 ** 2);
    // enough for one upload's parts to go round
    this.parts = new PartBuffers(options.partSize, Math.max(2, options.uploadParallelism));
    const where = options.endpoint ? ` at ${options.endpoint}` : ` in ${options.region}`;
    this.location = `s3://${options.bucket}/${options.prefix}${where}`;
  }

  blobKey(digest: string): string {
    return `${this.options.prefix}${this.options.blobsPrefix}${digest}`;
  }

  recordKey(name: string): string {
    return `${this.options.prefix}${this.options.manifestsPrefix}${name}`;
  }

  docKey(key: string): string {
    return `${this.options.prefix}${this.options.metadataPrefix}${key}`;
  }

  async statBlob(digest: string): Promise<BlobStat | undefined> {
    // Blobs never change once stored, so a positive answer can be reused; a miss never is,
    // since another writer may store the blob at any moment.
    const known = this.stats.get(digest);
    if (known) return known;
    const stat = await this.head(this.blobKey(digest));
    if (stat) this.stats.set(digest, stat);
    return stat;
  }

  /** @internal an upload just stored this blob */
  remember(digest: string, stat: BlobStat): void {
    this.stats.set(digest, stat);
  }

  async head(key: string): Promise<BlobStat | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw this.translate(err, `HEAD ${key}`);
    }
  }

  async readBlob(
    digest: string,
    offset: number,
    length: number,
    options: { size: number },
  ): Promise<AsyncIterable<Buffer>> {
    const end = offset + length;
    let source = this.readers.take(digest, offset);
    if (!source) {
      const key = this.blobKey(digest);
      // A read that stops short of the end is likely followed by the next one (containerd's
      // content proxy turns every ReadAt into its own Read): ask for the rest of the object, so
      // the next Read can continue on this response instead of paying another round trip.
      const range = end >= options.size ? `bytes=${offset}-${end - 1}` : `bytes=${offset}-`;
      try {
        // The response may outlive this call, parked for the next Read; a cancelled call closes
        // it by leaving the iteration early.
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key, Range: range }));
        source = new OpenRead(digest, offset, out.Body as Readable, this.readAhead);
      } catch (err) {
        if (isMissing(err)) {
          this.stats.delete(digest);
          throw notFound(`content ${digest}: not found`);
        }
        throw this.translate(err, `GET ${key}`);
      }
    }
    const opened = source;
    return opened.take(length, () => {
      if (end < options.size) this.readers.park(opened);
      else opened.close();
    });
  }

  async deleteBlob(digest: string): Promise<void> {
    this.stats.delete(digest);
    this.readers.drop(digest);
    await this.deleteKey(this.blobKey(digest));
  }

  async *listBlobs(): AsyncIterable<BlobEntry> {
    const prefix = this.blobKey('');
    for await (const obj of this.listKeys(prefix)) {
      const digest = obj.key.slice(prefix.length);
      // BuildKit's layout has nothing else here, but a bucket is shared space: skip strays.
      if (!isValidDigest(digest)) continue;
      yield { digest, size: obj.size, lastModified: obj.lastModified };
    }
  }

  createUpload(options: UploadOptions): Upload {
    return new S3Upload(this, options);
  }

  stagingKey(name: string): string {
    return this.docKey(`staging/${name}`);
  }

  /** Keys an upload of this daemon may target: a blob key, or its own staging area. */
  isUploadKey(key: string): boolean {
    return key.startsWith(this.blobKey('')) || key.startsWith(this.stagingKey(''));
  }

  async *listUploads(): AsyncIterable<PendingUpload> {
    for (const [prefix, staging] of [
      [this.stagingKey(''), true],
      [this.blobKey(''), false],
    ] as const) {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        let out;
        try {
          out = await this.client.send(
            new ListMultipartUploadsCommand({
              Bucket: this.options.bucket,
              Prefix: prefix,
              ...(keyMarker ? { KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker } : {}),
            }),
          );
        } catch (err) {
          throw this.translate(err, `list multipart uploads under ${prefix}`);
        }
        for (const u of out.Uploads ?? []) {
          if (!u.Key || !u.UploadId) continue;
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
    if (typeof key !== 'string' || typeof uploadId !== 'string' || !this.isUploadKey(key)) return;
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      if (isMissing(err)) return;
      throw this.translate(err, `abort multipart upload of ${key}`);
    }
  }

  async touchBlob(digest: string, size: number): Promise<void> {
    const key = this.blobKey(digest);
    // As BuildKit does: a self-copy that replaces metadata, which S3 counts as a new write.
    await this.copyKey(key, key, size, { 'updated-at': new Date().toISOString() });
  }

  async getRecord(name: string): Promise<{ body: Buffer; lastModified: Date } | undefined> {
    return this.getSmall(this.recordKey(name));
  }

  async putRecord(name: string, body: Buffer): Promise<void> {
    await this.putKey(this.recordKey(name), body);
  }

  async deleteRecord(name: string): Promise<boolean> {
    const key = this.recordKey(name);
    if (!(await this.head(key))) return false;
    await this.deleteKey(key);
    return true;
  }

  async listRecords(prefix: string, startAfter: string, limit: number): Promise<{ entries: RecordEntry[]; truncated: boolean }> {
    const base = this.recordKey('');
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.options.bucket,
          Prefix: base + prefix,
          ...(startAfter ? { StartAfter: base + startAfter } : {}),
          MaxKeys: limit,
        }),
      );
      const entries = (out.Contents ?? [])
        .filter((o) => o.Key !== undefined)
        .map((o) => ({ name: o.Key!.slice(base.length), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) }));
      return { entries, truncated: Boolean(out.IsTruncated) };
    } catch (err) {
      throw this.translate(err, `LIST ${base + prefix}`);
    }
  }

  async getDoc(key: string): Promise<Buffer | undefined> {
    return (await this.getSmall(this.docKey(key)))?.body;
  }

  /** A whole small object (a record or a document); undefined when there is none. */
  private async getSmall(key: string): Promise<{ body: Buffer; lastModified: Date } | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return { body: Buffer.from(await out.Body!.transformToByteArray()), lastModified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw this.translate(err, `GET ${key}`);
    }
  }

  async putDoc(key: string, body: Buffer): Promise<void> {
    await this.putKey(this.docKey(key), body);
  }

  async deleteDoc(key: string): Promise<void> {
    await this.deleteKey(this.docKey(key));
  }

  async *listDocs(prefix: string): AsyncIterable<string> {
    const base = this.docKey('');
    for await (const obj of this.listKeys(base + prefix)) yield obj.key.slice(base.length);
  }

  uploadIdentity(handle: UploadHandle): string {
    return typeof handle.uploadId === 'string' ? handle.uploadId : JSON.stringify(handle);
  }

  usage(): StoreUsage {
    return {
      uploadBuffer: { inUse: this.budget.inUse, limit: this.budget.limit },
      readAhead: { inUse: this.readAhead.used, limit: this.readAhead.total },
    };
  }

  async check(): Promise<CheckResult> {
    const result = await probeBucket(this, this.options.credentialsFrom);
    return {
      credentials: result.credentials,
      summary: `bucket: ${this.location}: put, head, get and delete of a probe object ok (${result.ms} ms)`,
      ms: result.ms,
    };
  }

  /** Called with false when S3 stops answering, and with true once it answers again. */
  onReachability(listener: (up: boolean) => void): void {
    this.reachabilityListeners.push(listener);
  }

  /**
   * S3 did not answer: say so, and probe the bucket every second until it does. Calls keep
   * failing fast with Unavailable meanwhile; nothing is lost, ingests resume afterwards.
   */
  private markUnreachable(): void {
    if (!this.reachable) return;
    this.reachable = false;
    for (const l of this.reachabilityListeners) l(false);
    const probe = () => {
      this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket })).then(
        () => {
          this.probing = undefined;
          this.reachable = true;
          for (const l of this.reachabilityListeners) l(true);
        },
        (err: unknown) => {
          // any answer from S3 itself (even a refusal) means it is reachable again
          if (err instanceof S3ServiceException && (err.$metadata?.httpStatusCode ?? 500) < 500) {
            this.probing = undefined;
            this.reachable = true;
            for (const l of this.reachabilityListeners) l(true);
            return;
          }
          this.probing = setTimeout(probe, 1_000);
          this.probing.unref();
        },
      );
    };
    this.probing = setTimeout(probe, 1_000);
    this.probing.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.probing);
    this.readers.closeAll();
    this.client.destroy();
  }

  // --- primitives shared with uploads ---------------------------------------------------------

  async putKey(key: string, body: Buffer): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.options.bucket, Key: key, Body: body, ContentLength: body.length }),
      );
    } catch (err) {
      throw this.translate(err, `PUT ${key}`);
    }
  }

  async deleteKey(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key }));
    } catch (err) {
      if (isMissing(err)) return;
      throw this.translate(err, `DELETE ${key}`);
    }
  }

  async *listKeys(prefix: string): AsyncIterable<{ key: string; size: number; lastModified: Date }> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw this.translate(err, `LIST ${prefix}`);
      }
      for (const obj of out.Contents ?? []) {
        if (obj.Key === undefined) continue;
        yield { key: obj.Key, size: obj.Size ?? 0, lastModified: obj.LastModified ?? new Date(0) };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /** Server-side copy; objects of 5 GiB and more go part by part, as S3 requires. */
  async copyKey(source: string, destination: string, size: number, metadata?: Record<string, string>): Promise<void> {
    const bucket = this.options.bucket;
    const copySource = `${bucket}/${encodeURIComponent(source).replace(/%2F/g, '/')}`;
    const replace = metadata ? { MetadataDirective: 'REPLACE' as const, Metadata: metadata } : {};
    try {
      if (size < MAX_SINGLE_COPY) {
        await this.client.send(new CopyObjectCommand({ Bucket: bucket, Key: destination, CopySource: copySource, ...replace }));
        return;
      }
      const created = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: destination, ...(metadata ? { Metadata: metadata } : {}) }),
      );
      const uploadId = created.UploadId!;
      try {
        const parts: CompletedPart[] = [];
        for (let start = 0, n = 1; start < size; start += COPY_PART_SIZE, n++) {
          const end = Math.min(start + COPY_PART_SIZE, size) - 1;
          const out = await this.client.send(
            new UploadPartCopyCommand({
              Bucket: bucket,
              Key: destination,
              UploadId: uploadId,
              PartNumber: n,
              CopySource: copySource,
              CopySourceRange: `bytes=${start}-${end}`,
            }),
          );
          parts.push({ PartNumber: n, ETag: out.CopyPartResult?.ETag });
        }
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: destination,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        );
      } catch (err) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: destination, UploadId: uploadId }))
          .catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw this.translate(err, `COPY ${source} to ${destination}`);
    }
  }

  /** Turns an SDK or network failure into a domain error naming the endpoint and operation. */
  translate(err: unknown, operation: string): StoreError {
    if (err instanceof StoreError) return err;
    const where = `S3 ${this.options.endpoint ?? `(${this.options.region})`} bucket ${this.options.bucket}`;
    if (err instanceof S3ServiceException) {
      const status = err.$metadata?.httpStatusCode ?? 0;
      const message = `${where}: ${operation} failed: ${err.name} (HTTP ${status})`;
      if (status >= 500 || status === 429 || err.name === 'SlowDown') {
        if (status >= 500) this.markUnreachable();
        return unavailable(message, err);
      }
      return new StoreError('internal', message, { cause: err });
    }
    const e = err as { name?: string; code?: string; message?: string };
    if (e?.name === 'AbortError') return new StoreError('unavailable', `${where}: ${operation} aborted`, { cause: err });
    const detail = e?.code ?? e?.name ?? 'error';
    this.markUnreachable();
    return unavailable(`${where} unreachable: ${operation}: ${detail}: ${e?.message ?? String(err)}`, err);
  }
}

function isMissing(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
}

/**
 * Streams a blob into S3. Bytes collect into parts of `partSize`; once the first part is full
 * a multipart upload starts and up to `uploadParallelism` parts travel at once while the client
 * keeps sending. A blob smaller than one part is a single PUT at commit. The multipart upload
 * targets the final blob key when the digest is known up front (no copy at commit; an
 * uncompleted multipart upload is invisible), otherwise a staging key that commit copies.
 * Every run of parts stored from the first on is a checkpoint the upload can be continued from,
 * by this process or another one, with nothing but the handle.
 */
class S3Upload implements Upload {
  readonly checkpointBytes: number;
  /** The part being filled: its first `buffered` bytes. */
  private part: Buffer | undefined;
  private buffered = 0;
  private uploadId: string | undefined;
  private creating: Promise<string> | undefined;
  private readonly key: string;
  private nextPart: number;
  /** ETags of stored parts, by part number. */
  private readonly stored = new Map<number, string>();
  /** Parts 1..contiguous are all stored: the checkpoint. */
  private contiguous: number;
  private readonly inflight = new Set<Promise<void>>();
  /** Parts S3 did not take, kept (with their budget) to be sent again once it answers. */
  private failed: OutgoingPart[] = [];
  private failure: unknown;
  /** Set by abort: nothing more may be written or committed through this upload. */
  private aborted = false;
  /** Budget reserved for the part being buffered now. */
  private held = 0;
  /** Bytes of the blob this upload has taken, counting those of a checkpoint it continues. */
  private accepted: number;
  /** The last part, shorter than the others; no checkpoint reaches past it. */
  private shortPart = 0;
  private readonly sizeHint: number;
  private readonly onDurable: ((checkpoint: Checkpoint) => void) | undefined;

  constructor(
    private readonly store: S3BlobStore,
    options: UploadOptions,
  ) {
    this.sizeHint = options.sizeHint ?? 0;
    this.onDurable = options.onDurable;
    const resume = options.resume ? parseCheckpoint(store, options.resume) : undefined;
    if (resume) {
      this.key = resume.key;
      this.uploadId = resume.uploadId;
      this.checkpointBytes = resume.partSize;
      resume.etags.forEach((etag, i) => this.stored.set(i + 1, etag));
      this.contiguous = resume.etags.length;
      this.accepted = options.resume!.offset;
    } else {
      this.key = options.target
        ? store.blobKey(options.target)
        : store.stagingKey(`${new Date().toISOString().slice(0, 10)}/${randomUUID()}`);
      // recorded in every checkpoint: a daemon restarted with another --part-size still
      // knows where the stored parts end
      this.checkpointBytes = store.options.partSize;
      this.contiguous = 0;
      this.accepted = 0;
    }
    this.nextPart = this.contiguous + 1;
  }

  /**
   * Accepts a chunk. It fails only before accepting anything (when parts sent earlier could
   * not be stored, even on a new attempt), so the caller's count of accepted bytes stays right
   * and the same ingest can go on once S3 is back.
   */
  async write(chunk: Buffer): Promise<void> {
    this.checkOpen();
    await this.recover();
    if (chunk.length === 0) return;
    await this.reserve();
    // A client may send more than it first declared (containerd takes a larger total on any
    // message): the part then grows past what was reserved for it, and so must the reservation.
    const needed = Math.min(this.checkpointBytes, this.buffered + chunk.length);
    if (needed > this.held) this.held += await this.store.budget.acquire(needed - this.held);
    this.accepted += chunk.length;
    // Copied into the part at once: the message it came in is let go now, not a part later.
    for (let from = 0; from < chunk.length; ) {
      const part = this.fillable(chunk.length - from);
      const n = Math.min(chunk.length - from, part.length - this.buffered);
      chunk.copy(part, this.buffered, from, from + n);
      this.buffered += n;
      from += n;
      if (this.buffered === this.checkpointBytes) {
        await this.sendPart(this.takePart());
        if (from < chunk.length) await this.reserve();
      }
    }
  }

  /** The part buffer, with room for at least one more byte. */
  private fillable(wanted: number): Buffer {
    if (this.part && this.buffered < this.part.length) return this.part;
    const whole = this.checkpointBytes;
    // A blob declared smaller than a part gets a buffer of its size. One of unknown size starts
    // small and doubles (a 4 KiB blob needs no 8 MiB) until a first whole part has gone; from
    // then on parts are whole from the start. A client sending more than it declared grows it.
    const start = this.sizeHint > 0 ? this.held : this.nextPart > 1 ? whole : MIN_PART_BUFFER;
    const size = Math.min(whole, Math.max(start, this.buffered + wanted, 2 * (this.part?.length ?? 0)));
    const grown = this.store.parts.take(size);
    if (this.part) this.part.copy(grown, 0, 0, this.buffered);
    this.part = grown;
    return grown;
  }

  private async reserve(): Promise<void> {
    if (this.held > 0) return;
    const partSize = this.checkpointBytes;
    const left = this.sizeHint - this.accepted + this.buffered;
    const want = this.sizeHint > 0 && left > 0 ? Math.min(left, partSize) : partSize;
    this.held = await this.store.budget.acquire(want);
  }

  private releaseHeld(): void {
    this.store.budget.release(this.held);
    this.held = 0;
  }

  async commit(digest: string, size: number): Promise<void> {
    this.checkOpen();
    // Parts still travelling are not waited for here: the last one joins them at once.
    await this.recover();
    const finalKey = this.store.blobKey(digest);
    if (this.uploadId === undefined && this.creating === undefined && this.inflight.size === 0) {
      // the buffer is dropped only once S3 has it, so a failed PUT can be committed again
      await this.store.putKey(finalKey, this.part?.subarray(0, this.buffered) ?? Buffer.alloc(0));
      const { buffer } = this.takePart();
      if (buffer) this.store.parts.give(buffer);
      this.releaseHeld();
      this.store.remember(digest, { size, lastModified: new Date() });
      return;
    }
    // An upload straight to a blob key (started for an expected digest) can only become that blob.
    if (!this.key.startsWith(this.store.stagingKey('')) && this.key !== finalKey) {
      await this.abort();
      throw failedPrecondition(`ingest was started for ${this.key.slice(this.store.blobKey('').length)} but its content is ${digest}`);
    }
    if (this.buffered > 0) {
      this.shortPart = this.nextPart;
      await this.sendPart(this.takePart());
    }
    await this.settle();
    await this.recover();
    const { bucket } = this.store.options;
    const parts: CompletedPart[] = [...this.stored]
      .sort(([a], [b]) => a - b)
      .map(([PartNumber, ETag]) => ({ PartNumber, ETag }));
    try {
      await this.store.client.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key: this.key, UploadId: this.uploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (err) {
      throw this.failedUpload(err, 'complete multipart upload');
    }
    this.uploadId = undefined;
    if (this.key !== finalKey) {
      await this.store.copyKey(this.key, finalKey, size);
      await this.store.deleteKey(this.key).catch(() => undefined);
    }
    this.store.remember(digest, { size, lastModified: new Date() });
  }

  private checkOpen(): void {
    // e.g. after a commit found the bytes were not those the upload was started for
    if (this.aborted) throw failedPrecondition(`the upload to ${this.key} was abandoned; write the content again from offset 0`);
  }

  async abort(): Promise<void> {
    this.aborted = true;
    const { buffer } = this.takePart();
    if (buffer) this.store.parts.give(buffer);
    this.releaseHeld();
    await this.settle();
    for (const part of this.failed.splice(0)) {
      this.store.budget.release(part.reservation);
      this.store.parts.give(part.buffer);
    }
    const uploadId = this.uploadId ?? (await this.creating?.catch(() => undefined));
    this.uploadId = undefined;
    this.creating = undefined;
    if (uploadId === undefined) return;
    await this.store.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.store.options.bucket, Key: this.key, UploadId: uploadId }))
      .catch(() => undefined);
  }

  handle(): UploadHandle | undefined {
    if (this.uploadId === undefined) return undefined;
    const etags: string[] = [];
    for (let n = 1; n <= this.contiguous; n++) etags.push(this.stored.get(n)!);
    return { key: this.key, uploadId: this.uploadId, partSize: String(this.checkpointBytes), etags };
  }

  /** The part filled so far, and the buffer it sits in; the next byte starts a new part. */
  private takePart(): { body: Buffer; buffer: Buffer | undefined } {
    const buffer = this.part;
    const body = buffer ? buffer.subarray(0, this.buffered) : Buffer.alloc(0);
    this.part = undefined;
    this.buffered = 0;
    return { body, buffer };
  }

  /** Sends the parts S3 refused again, if the failure was one that may pass (S3 unavailable). */
  private async recover(): Promise<void> {
    if (!this.failure) return;
    if (!(this.failure instanceof StoreError && this.failure.kind === 'unavailable')) throw this.failure;
    await this.settle();
    this.failure = undefined;
    for (const part of this.failed.splice(0)) {
      await this.room();
      this.launch(part);
    }
    await this.settle();
    if (this.failure) throw this.failure;
  }

  private async room(): Promise<void> {
    while (this.inflight.size >= this.store.options.uploadParallelism) await Promise.race(this.inflight);
  }

  private async sendPart({ body, buffer }: { body: Buffer; buffer: Buffer | undefined }): Promise<void> {
    await this.room();
    // the part takes the buffer's reservation along until S3 has it
    const reservation = this.held;
    this.held = 0;
    this.launch({ partNumber: this.nextPart++, body, buffer: buffer ?? body, reservation });
  }

  private launch(part: OutgoingPart): void {
    const { bucket } = this.store.options;
    const { partNumber, body } = part;
    const sending: Promise<void> = (async () => {
      try {
        const uploadId = this.uploadId ?? (await this.create());
        const out = await this.store.client.send(
          new UploadPartCommand({ Bucket: bucket, Key: this.key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
        );
        this.stored.set(partNumber, out.ETag ?? '');
        this.store.budget.release(part.reservation);
        // the SDK is done with the body once send() settles, retries included
        this.store.parts.give(part.buffer);
        this.advance();
      } catch (err) {
        this.failure ??= this.failedUpload(err, `upload part ${partNumber}`);
        this.failed.push(part);
      }
    })().finally(() => this.inflight.delete(sending));
    this.inflight.add(sending);
  }

  /** Moves the checkpoint over parts stored in order; only full parts make one. */
  private advance(): void {
    const before = this.contiguous;
    while (this.stored.has(this.contiguous + 1) && this.contiguous + 1 !== this.shortPart) this.contiguous++;
    if (this.contiguous === before || this.aborted) return;
    this.onDurable?.({ offset: this.contiguous * this.checkpointBytes, handle: this.handle()! });
  }

  private create(): Promise<string> {
    this.creating ??= this.store.client
      .send(new CreateMultipartUploadCommand({ Bucket: this.store.options.bucket, Key: this.key }))
      .then((out) => {
        this.uploadId = out.UploadId!;
        this.onDurable?.({ offset: 0, handle: this.handle()! });
        return this.uploadId;
      })
      .catch((err: unknown) => {
        this.creating = undefined;
        throw this.store.translate(err, `start multipart upload of ${this.key}`);
      });
    return this.creating;
  }

  /** An upload completed or aborted elsewhere cannot take more parts: the client must start over. */
  private failedUpload(err: unknown, operation: string): StoreError {
    if (err instanceof S3ServiceException && err.name === 'NoSuchUpload') {
      return failedPrecondition(
        `multipart upload of ${this.key} no longer exists (completed or aborted elsewhere); write the content again from offset 0`,
      );
    }
    return this.store.translate(err, `${operation} of ${this.key}`);
  }

  private async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}

interface OutgoingPart {
  partNumber: number;
  body: Buffer;
  /** The pooled buffer `body` sits in, handed back once S3 has stored the part. */
  buffer: Buffer;
  /** Budget bytes the part holds until then. */
  reservation: number;
}

/** A checkpoint's handle, checked: a record in the bucket must not steer uploads elsewhere. */
function parseCheckpoint(
  store: S3BlobStore,
  checkpoint: Checkpoint,
): { key: string; uploadId: string; partSize: number; etags: string[] } {
  const { key, uploadId, partSize, etags } = checkpoint.handle;
  const size = Number(partSize);
  const valid =
    typeof key === 'string' &&
    store.isUploadKey(key) &&
    typeof uploadId === 'string' &&
    uploadId !== '' &&
    Number.isSafeInteger(size) &&
    size > 0 &&
    Array.isArray(etags) &&
    etags.every((e) => typeof e === 'string') &&
    checkpoint.offset === etags.length * size;
  if (!valid) throw failedPrecondition(`checkpoint of an ingest is not valid; write the content again from offset 0`);
  return { key: key as string, uploadId: uploadId as string, partSize: size, etags: [...(etags as string[])] };
}

/**
 * Bytes parked GET responses may have read ahead, all together: a Read that continues one finds
 * its first MiB already here instead of waiting for S3 to start sending again.
 */
class ReadAheadBudget {
  used = 0;
  constructor(
    readonly perRead: number,
    readonly total: number,
  ) {}
}

/** One GET response being consumed Read by Read. */
class OpenRead {
  private readonly iterator: AsyncIterator<Buffer>;
  /** Bytes taken from the response and not yet yielded, in order. */
  private ahead: Buffer[] = [];
  private aheadBytes = 0;
  private pulling: Promise<void> | undefined;
  private ended = false;
  private failure: unknown;
  private closed = false;

  constructor(
    readonly digest: string,
    public position: number,
    private readonly body: Readable,
    private readonly budget: ReadAheadBudget,
  ) {
    this.iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Yields exactly `length` bytes, then hands itself back through `done` for reuse. */
  async *take(length: number, done: () => void): AsyncGenerator<Buffer> {
    let remaining = length;
    let complete = false;
    try {
      // one reader of the response at a time
      await this.pulling;
      while (remaining > 0) {
        let chunk = this.ahead.shift();
        if (chunk) {
          this.aheadBytes -= chunk.length;
          this.budget.used -= chunk.length;
        } else {
          if (this.failure) throw this.failure;
          if (this.ended) break;
          const next = await this.iterator.next();
          if (next.done) break;
          chunk = next.value;
        }
        if (chunk.length > remaining) {
          this.ahead.unshift(chunk.subarray(remaining));
          this.aheadBytes += chunk.length - remaining;
          this.budget.used += chunk.length - remaining;
          chunk = chunk.subarray(0, remaining);
        }
        remaining -= chunk.length;
        this.position += chunk.length;
        yield chunk;
      }
      complete = remaining === 0;
    } finally {
      if (complete) done();
      else this.close();
    }
  }

  /** While parked, reads on into memory, within the per-read and the daemon-wide bound. */
  readAhead(): void {
    if (this.pulling || this.ended || this.closed) return;
    this.pulling = (async () => {
      while (!this.closed && this.aheadBytes < this.budget.perRead && this.budget.used < this.budget.total) {
        const next = await this.iterator.next();
        if (next.done) {
          this.ended = true;
          return;
        }
        if (this.closed) return;
        this.ahead.push(next.value);
        this.aheadBytes += next.value.length;
        this.budget.used += next.value.length;
      }
    })()
      .catch((err: unknown) => {
        this.failure = err;
      })
      .finally(() => {
        this.pulling = undefined;
      });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.used -= this.aheadBytes;
    this.ahead = [];
    this.aheadBytes = 0;
    this.body.destroy();
  }
}

/**
 * GET responses left open after a Read that stopped short of the end, so that the next Read at
 * that offset continues on them. Bounded in number; an unclaimed one is closed after a while.
 */
class ParkedReads {
  private readonly parked = new Map<string, { read: OpenRead; timer: NodeJS.Timeout }>();

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
  ) {}

  take(digest: string, position: number): OpenRead | undefined {
    const key = `${digest}@${position}`;
    const entry = this.parked.get(key);
    if (!entry) return undefined;
    this.parked.delete(key);
    clearTimeout(entry.timer);
    // a response that broke while parked is no use: the Read opens a new one
    if (entry.read.failed) {
      entry.read.close();
      return undefined;
    }
    return entry.read;
  }

  park(read: OpenRead): void {
    const key = `${read.digest}@${read.position}`;
    this.parked.get(key)?.read.close();
    this.parked.delete(key);
    while (this.parked.size >= this.max) {
      const [oldest, entry] = this.parked.entries().next().value as [string, { read: OpenRead; timer: NodeJS.Timeout }];
      clearTimeout(entry.timer);
      entry.read.close();
      this.parked.delete(oldest);
    }
    const timer = setTimeout(() => {
      if (this.parked.get(key)?.read === read) this.parked.delete(key);
      read.close();
    }, this.idleMs);
    timer.unref();
    this.parked.set(key, { read, timer });
    read.readAhead();
  }

  drop(digest: string): void {
    for (const [key, entry] of this.parked) {
      if (entry.read.digest !== digest) continue;
      clearTimeout(entry.timer);
      entry.read.close();
      this.parked.delete(key);
    }
  }

  closeAll(): void {
    for (const entry of this.parked.values()) {
      clearTimeout(entry.timer);
      entry.read.close();
    }
    this.parked.clear();
  }
}
