
/**
 * The one storage interface the domain talks to. Two implementations: S3 (the product) and a
 * local directory (the embedded default). Keys of committed blobs are BuildKit's
 * (`<prefix><blobs_prefix><digest>`); everything the daemon itself needs to remember (labels,
 * leases, ingest state) is a small JSON document under the store's own metadata prefix.
 */
export interface BlobStat {
  readonly size: number;
  readonly lastModified: Date;
}

export interface BlobEntry extends BlobStat {
  readonly digest: string;
}

export interface RecordEntry {
  readonly name: string;
  readonly size: number;
  readonly lastModified: Date;
  /** As StoredDoc's, where the listing tells it. */
  readonly version?: string | undefined;
}

/** A cache record as stored, with its version as StoredDoc's where the store knows it. */
export interface StoredRecord {
  readonly body: Buffer;
  readonly lastModified: Date;
  readonly version?: string | undefined;
}

/**
 * A document as stored: its body, and what tells this stored version from any other (S3's ETag
 * and size) where the store knows it. A local directory tells none (see fs-docs.ts).
 */
export interface StoredDoc {
  readonly body: Buffer;
  readonly version?: string | undefined;
}

/** A document's key in a listing, with the version stored (as StoredDoc's) where the listing tells it. */
export interface DocEntry {
  readonly key: string;
  readonly version?: string | undefined;
}

export interface RecordPage {
  readonly entries: RecordEntry[];
  /**
   * Where the next page starts (after this name); absent on the last page. A page may hold fewer
   * entries than asked for, even none, where records share their prefix with other keys.
   */
  readonly next?: string | undefined;
}

/** How a caller that may go away is told to stop waiting: `signal` is read only when a wait begins. */
export interface Cancellation {
  readonly signal: AbortSignal;
  /**
   * Who asks (a client's connection), opaque: where callers wait for a limited resource, a party
   * holding less of it is served first, so one client's many calls do not queue ahead of
   * everyone's. Undefined: one party with every other caller that names none.
   */
  readonly party?: object | undefined;
}

/** A read's bytes: a stream, or pieces the store had at hand. Either iterates with for-await. */
export type ReadSource = AsyncIterable<Buffer> | readonly Buffer[];

export interface BlobStore {
  /** Where data lives, for logs and error messages; never contains a secret. */
  readonly location: string;
  /** Each request is a round trip to a server (S3): one listing in place of many reads saves time. */
  readonly remote?: boolean;

  /**
   * The blob's size and age; undefined when it is not stored. A store may answer from what it
   * learned recently; `fresh` asks the storage itself (and corrects what was learned).
   */
  statBlob(digest: string, options?: { fresh?: boolean }): Promise<BlobStat | undefined>;
  /**
   * What statBlob would answer from what the store learned recently, without asking storage or
   * making a promise; undefined when it would have to ask. For the Read path, where `ctr content
   * get` makes thousands of calls a blob. `counted` false: a look that answers no lookup of its
   * own (the lookup that follows counts), kept out of the existence cache's hit metrics.
   */
  knownBlob?(digest: string, counted?: boolean): BlobStat | undefined;
  /**
   * Streams `length` bytes (> 0) from `offset`; the caller has checked the bounds against the
   * blob's `size`. A blob gone missing meanwhile is a not-found StoreError. Leaving the
   * iteration early (return) releases what the read holds. A read that must wait for the
   * store (S3's responses are bounded) stops waiting once `cancel`'s signal aborts; the signal
   * is read only then, so a caller may make it on first use. Bytes the store had at hand (a
   * small Read from memory) may come as an array of pieces instead of a stream.
   */
  readBlob(digest: string, offset: number, length: number, options: { size: number; cancel?: Cancellation | undefined }): Promise<ReadSource>;
  /**
   * Removes the blob's bytes. With `deadline` (epoch ms) the request is not sent, or given up,
   * past it: the collector's deletes must land while writers still wait for them.
   */
  deleteBlob(digest: string, options?: { deadline?: number }): Promise<void>;
  /** Every stored blob; never a record or a document of the daemon's, whatever the prefixes share. */
  listBlobs(): AsyncIterable<BlobEntry>;

  /**
   * Starts storing a new blob, or continues one from a checkpoint an earlier upload reported.
   * Nothing is visible under the blob key before `commit`.
   */
  createUpload(options: UploadOptions): Upload;
  /**
   * Continues a checkpoint recorded without the writer's hash state (see Upload.rereadable): the
   * bytes it stores go to `read`, in order, and the answer is a checkpoint holding the same bytes
   * that `createUpload` can continue, with `tidy`, to call once that checkpoint is recorded, to
   * remove what the old one left. A checkpoint whose bytes are gone is a failed-precondition
   * StoreError (the ingest starts over). `signal` (the open's client went away) stops the reading
   * with a cancelled StoreError, leaving the checkpoint to be continued by a later open.
   */
  reopenCheckpoint(checkpoint: Checkpoint, read: (chunk: Buffer) => void, signal?: AbortSignal): Promise<ReopenedCheckpoint>;
  /** Discards an upload another process (or an earlier run) left behind, by its handle. */
  discardUpload(handle: UploadHandle): Promise<void>;
  /**
   * Uploads in progress that this daemon may have started (its staging area, and blob keys,
   * where BuildKit's own uploads also appear), for the sweep of those nobody owns. Leaves out
   * the new upload a `reopenCheckpoint` of this store is still filling: no record names it yet.
   */
  listUploads(): AsyncIterable<PendingUpload>;

  /** Refreshes a blob's last-modified in place, so bucket lifecycle rules keep blobs in use. */
  touchBlob(digest: string, size: number): Promise<void>;

  /**
   * InvalidArgument when the store's layout would read a record of this name as something else
   * (a blob, or its own metadata), as can happen where the prefixes are shared or nested. The
   * record methods refuse such a name too.
   */
  checkRecordName(name: string): void;
  /**
   * BuildKit's cache records: `<prefix><manifests_prefix><name>`, raw bytes. `admit`, when given,
   * is told the record's size before its bytes are read, and refuses it by throwing (the caller's
   * memory bound; nothing is read then).
   */
  getRecord(name: string, admit?: (bytes: number) => void): Promise<StoredRecord | undefined>;
  /**
   * A record's bytes as they stream, for one too large for `getRecord` (another tool's object
   * under a shared manifests prefix, say) that the collector must still read for digests.
   */
  streamRecord(name: string): Promise<AsyncIterable<Buffer> | undefined>;
  putRecord(name: string, body: Buffer): Promise<void>;
  /** False when there was nothing to delete. */
  deleteRecord(name: string): Promise<boolean>;
  /**
   * Records whose name starts with `prefix`, after `startAfter`, at most `limit`, in name order;
   * never a blob or a document of the daemon's, whatever the prefixes share, nor a record whose
   * name starts with one of `outside` (a listing of their own covers those: recordShards).
   */
  listRecords(prefix: string, startAfter: string, limit: number, options?: { outside?: readonly string[] }): Promise<RecordPage>;
  /**
   * Name prefixes that split a listing of all records into listings that can go side by side:
   * where blobs share the records' key space, one each for blobs' first hex digits, which a
   * single listing would walk key by key. Empty where one listing reads only records.
   */
  recordShards(): readonly string[];

  getDoc(key: string): Promise<StoredDoc | undefined>;
  putDoc(key: string, body: Buffer): Promise<void>;
  /** With a `deadline`, no attempt (first or retry) is sent after it, and the call fails there. */
  deleteDoc(key: string, options?: { deadline?: number }): Promise<void>;
  /**
   * Keys (relative to the metadata prefix) that start with `prefix`, in key order. `pageKeys`
   * bounds the keys one request answers (S3's MaxKeys), for a caller that reads only a few.
   */
  listDocs(prefix: string, options?: { pageKeys?: number }): AsyncIterable<DocEntry>;
  /**
   * The distinct key segments right below `prefix` (which ends in `/`) that have documents
   * under them, without listing those documents: S3's delimiter listing.
   */
  listDocGroups(prefix: string): AsyncIterable<string>;

  /** What identifies an upload's stored bytes: the same for every checkpoint of one upload. */
  uploadIdentity(handle: UploadHandle): string;
  /** Called with false when the store stops answering, and with true once it answers again. */
  onReachability(listener: (up: boolean) => void): void;
  /** Memory the store holds on clients' behalf, against its limits. */
  usage(): StoreUsage;
  /**
   * Proves the store usable before it serves: for S3, that credentials resolve and the bucket
   * takes a probe object. Throws a ProbeError with a plain reason when it is not.
   */
  check(): Promise<CheckResult>;

  close(): Promise<void>;
}

export interface StoreUsage {
  /** Bytes of upload buffers in use, and how many all uploads together may hold. */
  readonly uploadBuffer: { readonly inUse: number; readonly limit: number };
  /** Bytes parked reads have read ahead, and how many they may hold together. */
  readonly readAhead: { readonly inUse: number; readonly limit: number };
  /** Bytes of blobs a local read tier keeps on disk, and its size; absent without a tier. */
  readonly tier?: { readonly inUse: number; readonly limit: number };
}

export interface CheckResult {
  /** Where the credentials came from (shortened key id, never a secret); stores without any omit it. */
  readonly credentials?: string | undefined;
  /** One line saying what was proven. */
  readonly summary: string;
  readonly ms: number;
}

export interface UploadOptions {
  /**
   * The digest the bytes are expected to have, when known; stores may use it to upload straight
   * to the final key, which stays invisible until `commit` confirms the digest.
   */
  target?: string | undefined;
  /** Declared size, when the client gave one. */
  sizeHint?: number | undefined;
  /** Continue this checkpoint instead of starting empty. */
  resume?: Checkpoint | undefined;
  /**
   * Called whenever more bytes are stored for good, with a checkpoint to continue from after a
   * crash. The first call (offset 0) comes once the upload exists in the store at all.
   */
  onDurable?: ((checkpoint: Checkpoint) => void) | undefined;
}

/** Where an upload can be continued: the first `offset` bytes are stored, `handle` finds them. */
export interface Checkpoint {
  readonly offset: number;
  readonly handle: UploadHandle;
}

export interface ReopenedCheckpoint {
  readonly checkpoint: Checkpoint;
  tidy(): Promise<void>;
}

export interface PendingUpload {
  readonly handle: UploadHandle;
  readonly startedAt: Date;
  /** In the daemon's own staging area (only it writes there), as opposed to under a blob key. */
  readonly staging: boolean;
}

/** Bytes on their way into the store. Nothing is visible under the blob key before commit. */
export interface Upload {
  /**
   * Checkpoints fall on multiples of this many bytes from the start of the blob; a writer that
   * wants to continue from one keeps its own state (the running hash) at those offsets.
   */
  readonly checkpointBytes: number;
  /**
   * Whether its checkpoints can be continued from the stored bytes alone (reopenCheckpoint reads
   * them back), so the writer need keep no state of its own for a crash. Not so for bytes
   * uploaded under the blob's own key: only the completion that makes the blob visible could
   * read them.
   */
  readonly rereadable: boolean;
  /**
   * Resolves once the chunk is accepted; waiting here is the back-pressure on the client. A wait
   * (for memory to buffer in) ends, with a cancelled StoreError, when `signal` aborts.
   */
  write(chunk: Buffer, signal?: AbortSignal): Promise<void>;
  /**
   * Stores every byte taken so far, so that `commit` has only the step that makes them visible
   * left (the caller may look things up meanwhile); `commit` does it too when not called first.
   * A wait for buffer space (a part taken back from disk) ends when `signal` aborts.
   */
  prepare(digest: string, signal?: AbortSignal): Promise<void>;
  /** Makes the bytes visible as blob `digest`; the caller has verified digest and size. */
  commit(digest: string, size: number): Promise<void>;
  /**
   * The stream writing went away: give back the memory held for this upload (bytes not yet in
   * a stored part go to disk) while keeping every byte taken; the next write or commit takes
   * them back in. Settles, resolved or rejected, only once no part is on its way to the store.
   */
  suspend(): Promise<void>;
  /**
   * Runs `work` (a COMMIT's checks around prepare and commit) with the upload counted in use, so
   * that its buffered bytes are not put on disk for others meanwhile; stores that never do that
   * need not have it.
   */
  inUse?<T>(work: () => Promise<T>): Promise<T>;
  /**
   * This process lets go of the upload without discarding what is stored of it: memory and
   * spilled bytes are given back, the stored parts stay for whoever continues from a checkpoint.
   */
  forget(): Promise<void>;
  /** Discards everything written; safe to call more than once and after a failure. */
  abort(): Promise<void>;
  /** What another process needs to find and discard this upload's stored bytes, if any yet. */
  handle(): UploadHandle | undefined;
}

/** JSON-serialisable identity of an upload's stored bytes (store-specific fields). */
export type UploadHandle = { readonly [field: string]: string | readonly string[] };
