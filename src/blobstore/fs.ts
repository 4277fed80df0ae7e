import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { basename, join } from 'node:path';
import { isValidDigest } from '../digest.js';
import { notFound, readBackCancelled, startOver, unavailable } from '../errors.js';
import { piecesOfFile, PieceBudget } from './disk-pieces.js';
import { DirectoryDocs, isNoEntry } from './fs-docs.js';
import { diskSync, localError, TEMP_NAME, writeAside, type FsSync } from './fs-files.js';
import { FsUpload } from './fs-upload.js';
import { ProbeError } from './probe-error.js';
import type {
  BlobEntry,
  CheckResult,
  StoreUsage,
  BlobStat,
  BlobStore,
  Checkpoint,
  DocEntry,
  PendingUpload,
  RecordEntry,
  RecordPage,
  ReopenedCheckpoint,
  StoredDoc,
  StoredRecord,
  Upload,
  UploadHandle,
  UploadOptions,
} from './types.js';

const UPLOAD_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The embedded default: a local directory laid out like the bucket (`blobs/<digest>`, and the
 * daemon's documents under `s3cs/`), so moving to S3 later is a plain copy. A blob appears by
 * an atomic rename of a fully written, fsync'ed file, and its directory is synced after. Failures
 * of the directory reach clients as what could not be done (see localError), without its path.
 */
export class FsBlobStore implements BlobStore {
  readonly location: string;
  private readonly blobsDir: string;
  private readonly docsDir: string;
  private readonly docs: DirectoryDocs;
  private readonly uploadsDir: string;
  private readonly recordsDir: string;
  /** Pieces of blob files Reads hold at once, all together (see PieceBudget). */
  private readonly pieces = new PieceBudget(32 * 1024 * 1024);

  constructor(
    readonly root: string,
    metadataPrefix = 's3cs/',
    private readonly sync: FsSync = diskSync,
  ) {
    this.location = `directory ${root}`;
    this.blobsDir = join(root, 'blobs');
    this.docsDir = join(root, ...metadataPrefix.split('/').filter(Boolean));
    this.uploadsDir = join(root, 'uploads');
    this.recordsDir = join(root, 'manifests');
    this.docs = new DirectoryDocs(this.docsDir, this.uploadsDir, sync);
  }

  async init(): Promise<void> {
    await Promise.all([this.blobsDir, this.docsDir, this.uploadsDir, this.recordsDir].map((d) => mkdir(d, { recursive: true })));
  }

  private blobPath(digest: string): string {
    return join(this.blobsDir, digest);
  }

  /** `work`, its failure told as what could not be done (see localError). */
  private async local<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw localError(err, what, this.root);
    }
  }

  /** `items`, a failure met on the way told as in `local`. */
  private async *localEach<T>(what: string, items: () => AsyncIterable<T> | Promise<AsyncIterable<T>>): AsyncIterable<T> {
    try {
      yield* await items();
    } catch (err) {
      throw localError(err, what, this.root);
    }
  }

  async statBlob(digest: string): Promise<BlobStat | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return { size: st.size, lastModified: st.mtime };
    } catch (err) {
      if (isNoEntry(err)) return undefined;
      throw localError(err, `look-up of ${digest}`, this.root);
    }
  }

  async readBlob(digest: string, offset: number, length: number): Promise<AsyncIterable<Buffer>> {
    // opened as the Read starts: a blob deleted since its stat is NotFound rather than an I/O error
    const openFile = () => open(this.blobPath(digest), 'r').catch((err: unknown) => {
      throw isNoEntry(err) ? notFound(`content ${digest}: not found`) : err;
    });
    return this.localEach(`read of ${digest}`, () =>
      piecesOfFile(openFile, offset, length, this.pieces, (at) =>
        unavailable(`read of ${digest} ended at ${at}, expected ${offset + length}: the stored file changed`),
      ),
    );
  }

  async deleteBlob(digest: string, options: { deadline?: number } = {}): Promise<void> {
    if (options.deadline !== undefined && Date.now() > options.deadline) throw unavailable(`delete of ${digest}: not done, its deadline passed`);
    await this.local(`delete of ${digest}`, () => rm(this.blobPath(digest), { force: true }));
  }

  async *listBlobs(): AsyncIterable<BlobEntry> {
    const names = (await this.local('listing of blobs', () => readdir(this.blobsDir))).sort();
    for (const name of names) {
      if (!isValidDigest(name)) continue;
      const st = await this.statBlob(name);
      if (st) yield { digest: name, ...st };
    }
  }

  createUpload(options: UploadOptions): Upload {
    const name = options.resume ? uploadName(options.resume) : randomUUID();
    return new FsUpload(join(this.uploadsDir, name), (digest) => this.blobPath(digest), options, this.root, this.sync);
  }

  /** The file holds the checkpoint's bytes as they are: read, and continued in place. */
  reopenCheckpoint(checkpoint: Checkpoint, read: (chunk: Buffer) => void, signal?: AbortSignal): Promise<ReopenedCheckpoint> {
    return this.local('read back of an upload file', () => this.readBack(checkpoint, read, signal));
  }

  private async readBack(checkpoint: Checkpoint, read: (chunk: Buffer) => void, signal?: AbortSignal): Promise<ReopenedCheckpoint> {
    const path = join(this.uploadsDir, uploadName(checkpoint));
    const st = await stat(path).catch((err: unknown) => {
      if (isNoEntry(err)) return undefined;
      throw err;
    });
    if (!st || st.size < checkpoint.offset) {
      throw startOver(`upload ${basename(path)} holds less than its checkpoint; write the content again from offset 0`);
    }
    if (checkpoint.offset > 0) {
      for await (const chunk of createReadStream(path, { end: checkpoint.offset - 1 })) {
        if (signal?.aborted) throw readBackCancelled();
        read(chunk as Buffer);
      }
    }
    return { checkpoint, tidy: async () => undefined };
  }

  async discardUpload(handle: UploadHandle): Promise<void> {
    const { file } = handle;
    // only a bare upload id (or a temporary file's name) is accepted, so a forged record cannot name another path
    if (typeof file === 'string' && (UPLOAD_NAME.test(file) || TEMP_NAME.test(file))) {
      await this.local('discard of an upload file', () => rm(join(this.uploadsDir, file), { force: true }));
    }
  }

  /**
   * Upload files, and the temporary files of documents and records: a crash between their write
   * and their rename leaves them behind, and the sweep discards them as it does an upload nobody
   * owns (once as old as its grace, so one being written now stays).
   */
  async *listUploads(): AsyncIterable<PendingUpload> {
    for (const name of (await this.local('listing of upload files', () => readdir(this.uploadsDir))).sort()) {
      if (!UPLOAD_NAME.test(name) && !TEMP_NAME.test(name)) continue;
      const st = await stat(join(this.uploadsDir, name)).catch(() => undefined);
      if (st) yield { handle: { file: name }, startedAt: st.mtime, staging: true };
    }
  }

  async touchBlob(digest: string): Promise<void> {
    const now = new Date();
    await this.local(`touch of ${digest}`, () => utimes(this.blobPath(digest), now, now));
  }

  // Record names may hold "/" and other characters a file name cannot: one encoded file each.
  private recordPath(name: string): string {
    return join(this.recordsDir, encodeURIComponent(name));
  }

  /** Records have a directory of their own here, whatever the bucket's prefixes: no name is ambiguous. */
  checkRecordName(): void {}

  async getRecord(name: string, admit?: (bytes: number) => void): Promise<StoredRecord | undefined> {
    let file: FileHandle | undefined;
    try {
      // one handle for the size and the bytes: a Put renames another file over the name
      file = await open(this.recordPath(name), 'r');
      const st = await file.stat();
      admit?.(st.size);
      return { body: await file.readFile(), lastModified: st.mtime };
    } catch (err) {
      if (isNoEntry(err)) return undefined;
      throw localError(err, `read of record ${JSON.stringify(name)}`, this.root);
    } finally {
      // read-only: nothing a failed close could lose
      await file?.close().catch(() => undefined);
    }
  }

  async streamRecord(name: string): Promise<AsyncIterable<Buffer> | undefined> {
    // records here are the daemon's own, never larger than a Put allows: read whole
    const record = await this.getRecord(name);
    return record && (async function* () {
      yield record.body;
    })();
  }

  async putRecord(name: string, body: Buffer): Promise<void> {
    const path = this.recordPath(name);
    const tmp = join(this.uploadsDir, `record-${randomUUID()}`);
    await this.local(`write of record ${JSON.stringify(name)}`, () => writeAside(tmp, path, body, this.sync));
  }

  async deleteRecord(name: string): Promise<boolean> {
    try {
      await rm(this.recordPath(name));
      return true;
    } catch (err) {
      if (isNoEntry(err)) return false;
      throw localError(err, `delete of record ${JSON.stringify(name)}`, this.root);
    }
  }

  async listRecords(prefix: string, startAfter: string, limit: number, options: { outside?: readonly string[] } = {}): Promise<RecordPage> {
    const outside = options.outside ?? [];
    const names = (await this.local('listing of records', () => readdir(this.recordsDir)))
      .map((file) => decodeURIComponent(file))
      .filter((name) => name.startsWith(prefix) && name > startAfter && !outside.some((p) => name.startsWith(p)))
      .sort();
    const page = names.slice(0, limit);
    const entries: RecordEntry[] = [];
    for (const name of page) {
      const st = await stat(this.recordPath(name)).catch(() => undefined);
      if (st) entries.push({ name, size: st.size, lastModified: st.mtime });
    }
    return { entries, next: names.length > limit ? page.at(-1) : undefined };
  }

  /** Records have a directory of their own here: one listing reads only them. */
  recordShards(): readonly string[] {
    return [];
  }

  getDoc(key: string): Promise<StoredDoc | undefined> {
    return this.local(`read of document ${key}`, () => this.docs.get(key));
  }

  putDoc(key: string, body: Buffer): Promise<void> {
    return this.local(`write of document ${key}`, () => this.docs.put(key, body));
  }

  async deleteDoc(key: string, options: { deadline?: number } = {}): Promise<void> {
    if (options.deadline !== undefined && Date.now() > options.deadline) throw unavailable(`delete of document ${key}: not done, its deadline passed`);
    await this.local(`delete of document ${key}`, () => this.docs.delete(key));
  }

  listDocs(prefix: string): AsyncIterable<DocEntry> {
    return this.localEach(`listing of documents under ${prefix}`, () => this.docs.list(prefix));
  }

  listDocGroups(prefix: string): AsyncIterable<string> {
    return this.localEach(`listing of documents under ${prefix}`, () => this.docs.groups(prefix));
  }

  uploadIdentity(handle: UploadHandle): string {
    return typeof handle.file === 'string' ? handle.file : JSON.stringify(handle);
  }

  /** A local directory does not come and go: nothing to report. */
  onReachability(): void {}

  /** Uploads go straight to files, buffering nothing; Reads hold the pieces they read (see PieceBudget). */
  usage(): StoreUsage {
    return { uploadBuffer: { inUse: 0, limit: 0 }, readAhead: { inUse: this.pieces.used, limit: this.pieces.total } };
  }

  async check(): Promise<CheckResult> {
    const started = performance.now();
    const probe = join(this.root, `.s3cs-check-${process.pid}`);
    try {
      await mkdir(this.root, { recursive: true });
      await writeFile(probe, 'probe');
      await readFile(probe);
      await rm(probe);
    } catch (err) {
      throw new ProbeError('failed', `local directory ${this.root} is not usable: ${(err as Error).message}`);
    }
    return {
      summary: `store: local directory ${this.root} (no bucket configured): writable`,
      ms: Math.round(performance.now() - started),
    };
  }

  async close(): Promise<void> {}
}

/** The upload file a checkpoint names: only a bare upload id, so a forged record cannot name another path. */
function uploadName(checkpoint: Checkpoint): string {
  const { file } = checkpoint.handle;
  if (typeof file !== 'string' || !UPLOAD_NAME.test(file)) {
    throw startOver('checkpoint of an ingest is not valid; write the content again from offset 0');
  }
  return file;
}
