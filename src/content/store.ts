import type { Logger } from 'pino';
import type { BlobStat, BlobStore, Checkpoint, Upload, UploadHandle, UploadOptions } from '../blobstore/types.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, outOfRange, unavailable } from '../errors.js';
import { validateLabels, type Labels } from '../labels.js';
import { Documents, docKeys } from '../metadata/documents.js';
import { validateNamespace } from '../namespaces.js';
import { parseDigest } from '../digest.js';
import { newRunningHash, type RunningHash } from './running-hash.js';
import { HashWorkers } from './hash-workers.js';
import { parseFilters, type FieldLookup } from '../filters.js';
import { validateRef } from './refs.js';
import { LRUCache } from 'lru-cache';

export interface ContentInfo {
  digest: string;
  size: number;
  createdAt: Date;
  updatedAt: Date;
  labels: Labels;
}

export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}

/** A blob's membership of one namespace, as stored in the metadata documents. */
interface ContentRecord {
  size: number;
  createdAt: string;
  updatedAt: string;
  labels: Labels;
}

/**
 * An ingest as recorded in the bucket from the moment some of its bytes are stored there. With
 * `hash`, the first `offset` bytes are stored for good and the ingest can be continued from
 * there by any daemon (this one after a crash included); without, it starts over.
 */
interface IngestRecord {
  ref: string;
  total: number;
  expected: string;
  startedAt: string;
  updatedAt: string;
  offset: number;
  upload?: UploadHandle;
  hash?: { algorithm: string; state: string };
}

/** Read chunks never exceed containerd's own 1 MiB buffer. */
export const MAX_READ_CHUNK = 1 << 20;

/** Bytes of a blob from `offset`, in the pieces storage delivered them in. */
export interface ReadChunk {
  offset: number;
  pieces: readonly Buffer[];
}

const RECORD_CACHE_MS = 30_000;
/** How long an "absent" answer for an expected digest stands for the same Write stream. */
const RECHECK_AFTER_MS = 2_000;

interface Ingest {
  readonly ns: string;
  readonly ref: string;
  startedAt: Date;
  updatedAt: Date;
  total: number;
  expected: string;
  offset: number;
  hasher: RunningHash;
  upload: Upload;
  /** Set while a Write stream holds the ref. */
  lockedSince: Date | undefined;
  /** Whether a record of this ingest may exist in the bucket (so there is one to remove). */
  recorded: boolean;
  /** The record writes under way, so removing it waits for them to land first. */
  recording?: Promise<void> | undefined;
  /** Another record write is wanted once the one under way lands. */
  rerecord?: boolean;
  /** The latest checkpoint the upload reported. */
  durable?: Checkpoint | undefined;
  /** Hash states at checkpoint offsets the upload has not reported yet (a few parts' worth). */
  states: Map<number, Uint8Array>;
  /** The latest point the ingest can be continued from after a crash. */
  resumable?: { checkpoint: Checkpoint; state: Uint8Array } | undefined;
}

export interface ContentStoreOptions {
  logger: Logger;
  /**
   * The namespace whose List shows every blob in the store, including blobs no namespace holds
   * (those BuildKit's own s3 cache wrote). Every other namespace lists only what it holds.
   */
  bucketNamespace?: string | undefined;
  /** An ingest nobody has written to for this long is discarded, with its stored bytes. */
  ingestExpiryMs?: number | undefined;
  /** An upload in the staging area no ingest owns is discarded once this old. */
  orphanUploadGraceMs?: number | undefined;
  /**
   * Multi-part ingests keep a saveable hash (default), so another run continues them after a
   * crash; without it they use Node's hash, several times cheaper, and a crash starts them over.
   */
  crashResume?: boolean | undefined;
}

/** Shared by every store in the process: a few worker threads serve all resumable ingests. */
let hashWorkers: HashWorkers | undefined;

function resumableHash(algorithm: string, state?: Uint8Array): Promise<RunningHash> {
  hashWorkers ??= new HashWorkers();
  return hashWorkers.open(algorithm, state);
}

/**
 * containerd's content store semantics (namespaced metadata over shared, digest-addressed
 * blobs) on top of a BlobStore. Bytes are shared by digest: any namespace can Info and Read a
 * blob that exists, as containerd does with its shared policy; labels, listings and ingests
 * belong to one namespace.
 */
export class ContentStore {
  private readonly docs: Documents;
  private readonly ingests = new Map<string, Ingest>();
  private readonly knownNamespaces = new Set<string>();
  private readonly logger: Logger;
  private readonly bucketNamespace: string | undefined;
  private readonly ingestExpiryMs: number;
  private readonly orphanUploadGraceMs: number;
  private readonly crashResume: boolean;
  /**
   * Recently read or written membership records (labels), present or absent, so Info does not
   * cost a GET every time. Entries expire after a short while, which bounds how long a label
   * change made through another daemon sharing the bucket can go unseen here.
   */
  private readonly records = new LRUCache<string, { value: ContentRecord | undefined }>({ max: 50_000, ttl: RECORD_CACHE_MS });

  constructor(
    readonly blobs: BlobStore,
    options: ContentStoreOptions,
  ) {
    this.docs = new Documents(blobs);
    this.logger = options.logger;
    this.bucketNamespace = options.bucketNamespace;
    this.ingestExpiryMs = options.ingestExpiryMs ?? 24 * 3_600_000;
    this.orphanUploadGraceMs = options.orphanUploadGraceMs ?? 15 * 60_000;
    this.crashResume = options.crashResume ?? true;
  }

  /**
   * Discards ingests untouched for longer than the expiry: those held in this process, and those
   * recorded in the bucket by any daemon (a crashed one included), aborting their multipart
   * uploads so they stop costing money; then uploads no ingest owns at all (left by a crash
   * before the ingest was recorded). Returns how many were discarded.
   */
  async sweepExpiredIngests(now = Date.now()): Promise<number> {
    const cutoff = now - this.ingestExpiryMs;
    let discarded = 0;
    for (const [key, ingest] of this.ingests) {
      if (ingest.lockedSince || ingest.updatedAt.getTime() >= cutoff) continue;
      this.ingests.delete(key);
      ingest.hasher.close();
      // Another daemon may have continued it from its record since: then the bytes are its.
      const record = ingest.recorded ? await this.docs.read<IngestRecord>(docKeys.ingest(ingest.ns, ingest.ref)) : undefined;
      if (record && new Date(record.updatedAt).getTime() > ingest.updatedAt.getTime()) continue;
      await ingest.upload.abort();
      await this.removeIngestRecord(ingest).catch(() => undefined);
      discarded++;
      this.logger.info({ ns: ingest.ns, ref: ingest.ref, offset: ingest.offset }, 'discarded expired ingest');
    }
    const owned = new Set<string>();
    for (const ingest of this.ingests.values()) {
      const handle = ingest.upload.handle();
      if (handle) owned.add(this.blobs.uploadIdentity(handle));
    }
    const prefix = docKeys.namespacesPrefix();
    for await (const nsKey of this.docs.list(prefix)) {
      const ns = nsKey.slice(prefix.length);
      for await (const { value } of this.docs.readAll<IngestRecord>(docKeys.ingestsPrefix(ns))) {
        if (new Date(value.updatedAt).getTime() >= cutoff || this.ingests.has(scopedKey(ns, value.ref))) {
          if (value.upload) owned.add(this.blobs.uploadIdentity(value.upload));
          continue;
        }
        await this.dropRecord(ns, value);
        discarded++;
        this.logger.info({ ns, ref: value.ref }, 'discarded expired ingest record and its stored bytes');
      }
    }
    // The grace covers an upload started a moment ago whose record is still on its way. Under
    // blob keys BuildKit's own uploads appear too: only ones older than any ingest may live go.
    for await (const upload of this.blobs.listUploads()) {
      if (owned.has(this.blobs.uploadIdentity(upload.handle))) continue;
      const grace = upload.staging ? this.orphanUploadGraceMs : Math.max(this.orphanUploadGraceMs, this.ingestExpiryMs);
      if (upload.startedAt.getTime() >= now - grace) continue;
      await this.blobs.discardUpload(upload.handle);
      discarded++;
      this.logger.info({ upload: upload.handle, startedAt: upload.startedAt }, 'discarded an upload no ingest owns');
    }
    return discarded;
  }

  // --- committed content ------------------------------------------------------------------------

  async info(ns: string, digest: string): Promise<ContentInfo> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const [stat, record] = await Promise.all([this.blobs.statBlob(d), this.readRecord(ns, d)]);
    if (!stat) throw notFound(`content ${d}: not found`);
    return toInfo(d, stat, record);
  }

  async update(ns: string, digest: string, labels: Labels, paths: readonly string[]): Promise<ContentInfo> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const [stat, record] = await Promise.all([this.blobs.statBlob(d), this.readRecord(ns, d)]);
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
    await this.writeRecord(ns, d, updated);
    return toInfo(d, stat, updated);
  }

  async *list(ns: string, filters: readonly string[]): AsyncIterable<ContentInfo> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    const prefix = docKeys.contentPrefix(ns);
    if (ns === this.bucketNamespace) {
      // This namespace's own records give labels; the bucket listing gives the blobs.
      const own = new Map<string, ContentRecord>();
      for await (const { key, value } of this.docs.readAll<ContentRecord>(prefix)) own.set(key.slice(prefix.length), value);
      for await (const blob of this.blobs.listBlobs()) {
        const info = toInfo(blob.digest, blob, own.get(blob.digest));
        if (filter.matches(contentFields(info))) yield info;
      }
      return;
    }
    for await (const { key, value } of this.docs.readAll<ContentRecord>(prefix)) {
      const digest = key.slice(prefix.length);
      const info = toInfo(digest, { size: value.size, lastModified: new Date(value.createdAt) }, value);
      if (filter.matches(contentFields(info))) yield info;
    }
  }

  async delete(ns: string, digest: string): Promise<void> {
    validateNamespace(ns);
    const d = parseDigest(digest).value;
    const [stat, record] = await Promise.all([this.blobs.statBlob(d), this.readRecord(ns, d)]);
    if (!stat && !record) throw notFound(`content ${d}: not found`);
    if (record) await this.removeRecord(ns, d);
    // The bytes go only when no other namespace still holds the blob.
    if (stat && !(await this.heldElsewhere(ns, d))) await this.blobs.deleteBlob(d);
  }

  /**
   * Validates a read and opens it. Bounds follow containerd: a negative offset reads from 0,
   * an offset past the end is OutOfRange, a size of 0 (or past the end) reads to the end.
   */
  async read(
    ns: string,
    digest: string,
    offset: number,
    size: number,
  ): Promise<AsyncIterable<ReadChunk>> {
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

  // --- ingests -----------------------------------------------------------------------------------

  async status(ns: string, ref: string): Promise<IngestStatus> {
    validateNamespace(ns);
    validateRef(ref);
    const live = this.ingests.get(scopedKey(ns, ref));
    if (live) return statusOf(live);
    const record = await this.docs.read<IngestRecord>(docKeys.ingest(ns, ref));
    if (!record) throw notFound(`could not get status for ref ${JSON.stringify(ref)}: not found`);
    return recordStatus(record);
  }

  async listStatuses(ns: string, filters: readonly string[]): Promise<IngestStatus[]> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    const byRef = new Map<string, IngestStatus>();
    for await (const { value } of this.docs.readAll<IngestRecord>(docKeys.ingestsPrefix(ns))) {
      byRef.set(value.ref, recordStatus(value));
    }
    for (const ingest of this.ingests.values()) if (ingest.ns === ns) byRef.set(ingest.ref, statusOf(ingest));
    return [...byRef.values()]
      .filter((st) => filter.matches((path) => (path.length === 1 && path[0] === 'ref' ? st.ref : undefined)))
      .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  async abort(ns: string, ref: string): Promise<void> {
    validateNamespace(ns);
    validateRef(ref);
    const key = scopedKey(ns, ref);
    const live = this.ingests.get(key);
    if (live?.lockedSince) throw lockedError(ref, live.lockedSince);
    if (live) {
      // openWriter dropped any older record of this ref, so the live ingest knows its own
      this.ingests.delete(key);
      live.hasher.close();
      await live.upload.abort();
      await this.removeIngestRecord(live);
      return;
    }
    const record = await this.docs.read<IngestRecord>(docKeys.ingest(ns, ref));
    if (!record) throw notFound(`ingest ${JSON.stringify(ref)}: not found`);
    await this.dropRecord(ns, record);
  }

  /**
   * Opens (or resumes) the ingest `ref` for one Write stream, holding its lock until the
   * writer is released. An expected digest that is already stored answers AlreadyExists,
   * after making the blob a member of this namespace (containerd's shared content policy).
   */
  async openWriter(ns: string, ref: string, total: number, expected: string): Promise<Writer> {
    validateNamespace(ns);
    validateRef(ref);
    if (total < 0) throw invalidArgument(`ref ${JSON.stringify(ref)}: negative total ${total}`);
    const wanted = expected !== '' ? parseDigest(expected).value : undefined;
    const key = scopedKey(ns, ref);
    // The existence check and the lookup of a record this ref may have left go to S3 together.
    const reading = this.ingests.has(key) ? undefined : this.docs.read<IngestRecord>(docKeys.ingest(ns, ref));
    reading?.catch(() => undefined);
    if (wanted) await this.failIfPresent(ns, wanted);
    let ingest = this.ingests.get(key);
    if (ingest?.lockedSince) throw lockedError(ref, ingest.lockedSince);
    if (ingest) refuseOtherTotal(ref, ingest.total, total);
    if (!ingest) {
      // A record without a live ingest was left by an earlier run or another daemon: continued
      // from its checkpoint when it has one, else started over (the client sees offset 0).
      const stale = await (reading ?? this.docs.read<IngestRecord>(docKeys.ingest(ns, ref)));
      if (stale) refuseOtherTotal(ref, stale.total, total);
      const resumed = stale ? await this.resumeFromRecord(ns, stale) : undefined;
      if (stale && !resumed) await this.dropRecord(ns, stale);
      if (this.ingests.get(key)?.lockedSince) {
        // Another stream took the ref meanwhile, continuing this very upload: leave it to that one.
        resumed?.hasher.close();
        throw lockedError(ref, this.ingests.get(key)!.lockedSince!);
      }
      ingest = resumed ?? (await this.newIngest(ns, ref, total, expected, stale ? new Date(stale.startedAt) : new Date()));
      this.ingests.set(key, ingest);
    }
    ingest.lockedSince = new Date();
    if (total > 0) ingest.total = total;
    if (expected) ingest.expected = expected;
    return new Writer(this, ingest);
  }

  /** @internal used by Writer */
  async failIfPresent(ns: string, digest: string): Promise<void> {
    const stat = await this.blobs.statBlob(digest);
    if (!stat) return;
    await this.ensureMember(ns, digest, stat, {});
    throw alreadyExists(`content ${digest}: already exists`);
  }

  /**
   * @internal used by Writer: the stream lets go of the ingest, either for good ('done': it was
   * committed or discarded) or keeping it for a resume ('released').
   */
  async finishIngest(ingest: Ingest, outcome: 'done' | 'released'): Promise<void> {
    ingest.lockedSince = undefined;
    const key = scopedKey(ingest.ns, ingest.ref);
    if (outcome === 'done') {
      if (this.ingests.get(key) === ingest) this.ingests.delete(key);
      ingest.hasher.close();
      return;
    }
    // Kept in memory for a resume with the same ref. Once some of its bytes are stored in the
    // bucket (a multipart upload has begun) it is recorded there too, so other daemons list it
    // and the stored bytes can be found and discarded once abandoned; bytes only buffered here
    // leave nothing in the bucket.
    if (ingest.offset > 0 && ingest.upload.handle() !== undefined) await this.recordIngest(ingest);
  }

  private async newIngest(ns: string, ref: string, total: number, expected: string, startedAt: Date): Promise<Ingest> {
    const ingest: Ingest = {
      ns,
      ref,
      startedAt,
      updatedAt: new Date(),
      total,
      expected,
      offset: 0,
      hasher: undefined as never,
      upload: undefined as never,
      lockedSince: undefined,
      recorded: false,
      states: new Map(),
    };
    await this.startUpload(ingest);
    return ingest;
  }

  /**
   * @internal used by Writer: a new, empty upload and hash for the ingest. Only an ingest that
   * may span several checkpoints pays for a hash whose state can be saved, and only when crashes
   * are to be survived.
   */
  async startUpload(ingest: Ingest): Promise<void> {
    ingest.upload = this.watchedUpload(ingest, { target: ingest.expected || undefined, sizeHint: ingest.total });
    const algorithm = ingest.expected ? parseDigest(ingest.expected).algorithm : 'sha256';
    const saveable = this.crashResume && (ingest.total === 0 || ingest.total >= ingest.upload.checkpointBytes);
    (ingest.hasher as RunningHash | undefined)?.close();
    ingest.hasher = saveable ? await resumableHash(algorithm) : newRunningHash(algorithm);
    ingest.offset = 0;
    ingest.durable = undefined;
    ingest.resumable = undefined;
    ingest.states.clear();
  }

  /** Continues an ingest another process recorded, from its checkpoint; undefined when it has none. */
  private async resumeFromRecord(ns: string, record: IngestRecord): Promise<Ingest | undefined> {
    if (!record.hash || !record.upload || !(record.offset > 0)) return undefined;
    try {
      const state = Buffer.from(record.hash.state, 'base64');
      const hasher = await resumableHash(record.hash.algorithm, state);
      const checkpoint: Checkpoint = { offset: record.offset, handle: record.upload };
      const ingest: Ingest = {
        ns,
        ref: record.ref,
        startedAt: new Date(record.startedAt),
        updatedAt: new Date(),
        total: record.total,
        expected: record.expected,
        offset: record.offset,
        hasher,
        upload: undefined as never,
        lockedSince: undefined,
        recorded: true,
        states: new Map(),
        durable: checkpoint,
        resumable: { checkpoint, state },
      };
      ingest.upload = this.watchedUpload(ingest, { sizeHint: record.total, resume: checkpoint });
      this.logger.info({ ns, ref: record.ref, offset: record.offset }, 'continuing an ingest from its checkpoint');
      return ingest;
    } catch (err) {
      this.logger.warn({ err, ns, ref: record.ref }, 'an ingest record cannot be continued; the ingest starts over');
      return undefined;
    }
  }

  /**
   * The moment some of an ingest's bytes are stored in the bucket it is recorded there, so a
   * crash of this daemon cannot leave an upload nobody knows about, and each checkpoint after
   * that moves the record on, so the ingest can be continued from it.
   */
  private watchedUpload(ingest: Ingest, options: Omit<UploadOptions, 'onDurable'>): Upload {
    const upload: Upload = this.blobs.createUpload({
      ...options,
      onDurable: (checkpoint) => {
        if (ingest.upload !== upload || this.ingests.get(scopedKey(ingest.ns, ingest.ref)) !== ingest) return;
        ingest.durable = checkpoint;
        if (checkpoint.offset === 0) void this.recordIngest(ingest);
        else this.advanceCheckpoint(ingest);
      },
    });
    return upload;
  }

  /**
   * @internal used by Writer: the ingest's bytes reached checkpoint offset `offset` (the hash's
   * calls are applied in order, so the state saved now is the state at that offset).
   */
  reachedCheckpointOffset(ingest: Ingest, offset: number): void {
    const hasher = ingest.hasher;
    hasher.save().then(
      (state) => {
        if (!state || ingest.hasher !== hasher) return;
        ingest.states.set(offset, state);
        this.advanceCheckpoint(ingest);
      },
      (err: unknown) => this.logger.warn({ err, ns: ingest.ns, ref: ingest.ref }, 'could not save the hash state of an ingest'),
    );
  }

  /** Records the latest checkpoint for which both the bytes are stored and the hash is known. */
  private advanceCheckpoint(ingest: Ingest): void {
    const durable = ingest.durable;
    if (!durable || durable.offset <= (ingest.resumable?.checkpoint.offset ?? 0)) return;
    const state = ingest.states.get(durable.offset);
    if (!state) return;
    ingest.resumable = { checkpoint: durable, state };
    for (const offset of ingest.states.keys()) if (offset <= durable.offset) ingest.states.delete(offset);
    void this.recordIngest(ingest);
  }

  /**
   * @internal used by Writer: writes (or refreshes) the bucket's record of an ingest. Writes
   * never overlap; requests made meanwhile collapse into one more write of the latest state.
   */
  async recordIngest(ingest: Ingest): Promise<void> {
    ingest.recorded = true;
    ingest.rerecord = true;
    ingest.recording ??= (async () => {
      try {
        while (ingest.rerecord) {
          ingest.rerecord = false;
          try {
            await this.ensureNamespace(ingest.ns);
            await this.docs.write(docKeys.ingest(ingest.ns, ingest.ref), ingestRecord(ingest));
          } catch (err) {
            this.logger.warn({ err, ref: ingest.ref, ns: ingest.ns }, 'could not record an ingest');
          }
        }
      } finally {
        ingest.recording = undefined;
      }
    })();
    await ingest.recording;
  }

  /** @internal used by Writer */
  async removeIngestRecord(ingest: Ingest): Promise<void> {
    while (ingest.recording) await ingest.recording;
    if (!ingest.recorded) return;
    await this.docs.remove(docKeys.ingest(ingest.ns, ingest.ref));
    ingest.recorded = false;
  }

  /** @internal used by Writer */
  async ensureMember(ns: string, digest: string, stat: BlobStat, labels: Labels, fresh = false): Promise<ContentInfo> {
    // A blob this call just stored has no membership worth reading: any old record is stale.
    const existing = fresh ? undefined : await this.readRecord(ns, digest);
    if (existing && Object.keys(labels).length === 0) return toInfo(digest, stat, existing);
    const now = new Date().toISOString();
    const record: ContentRecord = existing
      ? { ...existing, labels: { ...existing.labels, ...labels }, updatedAt: now }
      : { size: stat.size, createdAt: now, updatedAt: now, labels: { ...labels } };
    await this.writeRecord(ns, digest, record);
    return toInfo(digest, stat, record);
  }

  // --- helpers -------------------------------------------------------------------------------------

  private async readRecord(ns: string, digest: string): Promise<ContentRecord | undefined> {
    const key = scopedKey(ns, digest);
    const cached = this.records.get(key);
    if (cached) return cached.value;
    const value = await this.docs.read<ContentRecord>(docKeys.content(ns, digest));
    this.records.set(key, { value });
    return value;
  }

  /** Namespaces are listed so that sweeps and shared-blob checks can find their records. */
  private async ensureNamespace(ns: string): Promise<void> {
    if (this.knownNamespaces.has(ns)) return;
    await this.docs.write(docKeys.namespace(ns), { name: ns });
    this.knownNamespaces.add(ns);
  }

  private async writeRecord(ns: string, digest: string, record: ContentRecord): Promise<void> {
    await this.ensureNamespace(ns);
    await this.docs.write(docKeys.content(ns, digest), record);
    this.records.set(scopedKey(ns, digest), { value: record });
  }

  private async removeRecord(ns: string, digest: string): Promise<void> {
    await this.docs.remove(docKeys.content(ns, digest));
    this.records.set(scopedKey(ns, digest), { value: undefined });
  }

  private async heldElsewhere(ns: string, digest: string): Promise<boolean> {
    const prefix = docKeys.namespacesPrefix();
    for await (const key of this.docs.list(prefix)) {
      const other = key.slice(prefix.length);
      if (other === ns) continue;
      if ((await this.docs.read(docKeys.content(other, digest))) !== undefined) return true;
    }
    return false;
  }

  private async dropRecord(ns: string, record: IngestRecord): Promise<void> {
    if (record.upload) {
      await this.blobs.discardUpload(record.upload).catch((err: unknown) => {
        this.logger.warn({ err, ref: record.ref, ns }, 'could not discard the stored bytes of an old ingest');
      });
    }
    await this.docs.remove(docKeys.ingest(ns, record.ref));
  }
}

/** One Write stream's hold on an ingest. */
export class Writer {
  private released = false;
  private checkedExpected: string;
  /** When this stream last found `checkedExpected` absent from the store. */
  private checkedAt = 0;

  constructor(
    private readonly store: ContentStore,
    private readonly ingest: Ingest,
  ) {
    this.checkedExpected = ingest.expected;
    // openWriter has just checked the expected digest, when there was one
    if (ingest.expected) this.checkedAt = Date.now();
  }

  get ref(): string {
    return this.ingest.ref;
  }

  /** Where the ingest stands, without the digest (which may wait for the hash to catch up). */
  progress(): IngestStatus {
    return statusOf(this.ingest);
  }

  async status(): Promise<IngestStatus & { digest: string }> {
    return { ...statusOf(this.ingest), digest: await this.ingest.hasher.digest() };
  }

  /** Applies the `total` and `expected` a request carries, as containerd does for every message. */
  async update(total: number, expected: string): Promise<void> {
    const ingest = this.ingest;
    if (total < 0) throw invalidArgument(`ref ${JSON.stringify(ingest.ref)}: negative total ${total}`);
    if (total > 0) ingest.total = total;
    if (expected === '') return;
    const d = parseDigest(expected).value;
    ingest.expected = d;
    if (d === this.checkedExpected) return;
    this.checkedExpected = d;
    try {
      await this.store.failIfPresent(ingest.ns, d);
      this.checkedAt = Date.now();
    } catch (err) {
      await this.discard();
      throw err;
    }
  }

  /** Appends `data` at `offset`: 0 restarts the ingest, any other value must be the current size. */
  async write(offset: number, data: Buffer): Promise<void> {
    const ingest = this.ingest;
    if (offset < 0) throw invalidArgument(`ref ${JSON.stringify(ingest.ref)}: negative offset ${offset}`);
    if (offset > 0 && offset !== ingest.offset) {
      throw outOfRange(`ref ${JSON.stringify(ingest.ref)}: write @${offset} must occur at current offset ${ingest.offset}`);
    }
    if (offset === 0 && ingest.offset > 0) await this.restart();
    if (data.length === 0) return;
    if (ingest.total > 0 && ingest.offset + data.length > ingest.total) {
      throw outOfRange(
        `ref ${JSON.stringify(ingest.ref)}: write of ${data.length} bytes @${ingest.offset} goes past the declared total ${ingest.total}`,
      );
    }
    // Pieces end on checkpoint offsets, where the hash state is kept for a crash to resume from.
    const every = ingest.upload.checkpointBytes;
    for (let rest = data; rest.length > 0; ) {
      const room = every - (ingest.offset % every);
      const piece = rest.length <= room ? rest : rest.subarray(0, room);
      await ingest.upload.write(piece);
      await ingest.hasher.update(piece);
      ingest.offset += piece.length;
      ingest.updatedAt = new Date();
      rest = rest.subarray(piece.length);
      if (ingest.offset % every === 0) this.store.reachedCheckpointOffset(ingest, ingest.offset);
    }
  }

  /**
   * Verifies size and digest, then makes the blob visible. Returns the committed digest. The
   * ingest survives a failed verification (the client may abort or start over), as in containerd.
   */
  async commit(total: number, expected: string, labels: Labels): Promise<{ digest: string; size: number }> {
    const ingest = this.ingest;
    validateLabels(labels, `ref ${JSON.stringify(ingest.ref)}`);
    const size = ingest.offset;
    const wanted = total > 0 ? total : ingest.total;
    if (wanted > 0 && wanted !== size) {
      throw failedPrecondition(`${JSON.stringify(ingest.ref)} failed size validation: ${size} != ${wanted}`);
    }
    const digest = await ingest.hasher.digest();
    const want = expected || ingest.expected;
    if (want !== '' && parseDigest(want).value !== digest) {
      throw failedPrecondition(`${JSON.stringify(ingest.ref)}: unexpected commit digest ${digest}, expected ${want}`);
    }
    // A check this stream made moments ago stands; otherwise ask the store. (Storing bytes that
    // appeared meanwhile again is harmless: they are the same bytes.)
    const recentlyChecked = digest === this.checkedExpected && Date.now() - this.checkedAt < RECHECK_AFTER_MS;
    const present = recentlyChecked ? undefined : await this.store.blobs.statBlob(digest);
    if (present) {
      await this.store.ensureMember(ingest.ns, digest, present, labels);
      await this.discard();
      throw alreadyExists(`content ${digest}: already exists`);
    }
    await ingest.upload.commit(digest, size);
    this.released = true;
    await this.store.finishIngest(ingest, 'done');
    // The blob is stored: its membership and the end of the ingest's record go to S3 together.
    await Promise.all([
      this.store.ensureMember(ingest.ns, digest, { size, lastModified: new Date() }, labels, true),
      this.store.removeIngestRecord(ingest).catch(() => undefined),
    ]);
    return { digest, size };
  }

  /** Lets go of the ref without committing; the ingest stays resumable. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.store.finishIngest(this.ingest, 'released');
  }

  private async discard(): Promise<void> {
    this.released = true;
    await this.store.finishIngest(this.ingest, 'done');
    await this.ingest.upload.abort();
    await this.store.removeIngestRecord(this.ingest).catch(() => undefined);
  }

  private async restart(): Promise<void> {
    const ingest = this.ingest;
    await ingest.upload.abort();
    await this.store.startUpload(ingest);
    ingest.updatedAt = new Date();
  }
}

/** A key for something (a ref, a digest) within a namespace, for this process's maps. */
function scopedKey(ns: string, name: string): string {
  return `${ns}\0${name}`;
}

/**
 * An ingest continues only with the size it was begun with, as in containerd: bytes sent for
 * one blob must not be carried into another. Either side may leave the size undeclared (0).
 */
function refuseOtherTotal(ref: string, existing: number, provided: number): void {
  if (provided > 0 && existing > 0 && provided !== existing) {
    throw failedPrecondition(
      `ref ${JSON.stringify(ref)}: provided total ${provided} differs from the ingest's total ${existing} (abort the ref to start over)`,
    );
  }
}

function lockedError(ref: string, since: Date) {
  const held = Date.now() - since.getTime();
  return unavailable(`ref ${JSON.stringify(ref)} locked for ${(held / 1000).toFixed(3)}s (since ${since.toISOString()})`);
}

function ingestRecord(ingest: Ingest): IngestRecord {
  const resumable = ingest.resumable;
  const handle = resumable?.checkpoint.handle ?? ingest.upload.handle();
  return {
    ref: ingest.ref,
    total: ingest.total,
    expected: ingest.expected,
    startedAt: ingest.startedAt.toISOString(),
    updatedAt: ingest.updatedAt.toISOString(),
    offset: resumable?.checkpoint.offset ?? 0,
    ...(handle ? { upload: handle } : {}),
    ...(resumable ? { hash: { algorithm: ingest.hasher.algorithm, state: Buffer.from(resumable.state).toString('base64') } } : {}),
  };
}

function statusOf(ingest: Ingest): IngestStatus {
  return {
    ref: ingest.ref,
    offset: ingest.offset,
    total: ingest.total,
    expected: ingest.expected,
    startedAt: ingest.startedAt,
    updatedAt: ingest.updatedAt,
  };
}

function recordStatus(record: IngestRecord): IngestStatus {
  // Without a saved hash the stored bytes cannot be continued, so a resume starts at 0.
  return {
    ref: record.ref,
    offset: record.hash ? record.offset : 0,
    total: record.total,
    expected: record.expected,
    startedAt: new Date(record.startedAt),
    updatedAt: new Date(record.updatedAt),
  };
}

function newRecord(size: number, created: Date): ContentRecord {
  return { size, createdAt: created.toISOString(), updatedAt: created.toISOString(), labels: {} };
}

function toInfo(digest: string, stat: BlobStat, record: ContentRecord | undefined): ContentInfo {
  return {
    digest,
    size: stat.size,
    createdAt: record ? new Date(record.createdAt) : stat.lastModified,
    updatedAt: record ? new Date(record.updatedAt) : stat.lastModified,
    labels: record ? { ...record.labels } : {},
  };
}

function contentFields(info: ContentInfo): FieldLookup {
  return (path) => {
    if (path.length === 1 && path[0] === 'digest') return info.digest;
    if (path.length >= 2 && path[0] === 'labels') return info.labels[path.slice(1).join('.')];
    return undefined;
  };
}

async function* emptyChunks(): AsyncIterable<ReadChunk> {}

/**
 * Regroups a byte stream into messages of at most 1 MiB carrying absolute offsets. The bytes
 * stay in the pieces they arrived in: whoever puts them on the wire copies them once anyway.
 */
async function* chunked(source: AsyncIterable<Buffer>, start: number, end: number, digest: string): AsyncIterable<ReadChunk> {
  let offset = start;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  // An early return closes `source` too: for-await hands it on.
  for await (const piece of source) {
    let chunk = piece;
    while (chunk.length > 0) {
      const room = MAX_READ_CHUNK - pendingBytes;
      const take = chunk.length <= room ? chunk : chunk.subarray(0, room);
      pending.push(take);
      pendingBytes += take.length;
      chunk = chunk.subarray(take.length);
      if (pendingBytes === MAX_READ_CHUNK) {
        yield { offset, pieces: pending };
        offset += pendingBytes;
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) {
    yield { offset, pieces: pending };
    offset += pendingBytes;
  }
  if (offset !== end) {
    throw unavailable(`read of ${digest} ended at ${offset}, expected ${end}: the stored object changed or the connection broke`);
  }
}
