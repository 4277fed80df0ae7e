import { randomUUID } from 'node:crypto';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { StoreError, failedPrecondition, startOver } from '../../errors.js';
import { BlobSize } from './blob-size.js';
import { MultipartCalls } from './multipart.js';
import { FillingPart } from './filling-part.js';
import { fewerInFlight } from './in-flight.js';
import { SpilledParts } from './spilled-parts.js';
import type { Checkpoint, Upload, UploadHandle, UploadOptions } from '../types.js';
import { QuietUpload } from './quiet-upload.js';
import { RefusedParts } from './refused-parts.js';
import { parseCheckpoint } from './checkpoint.js';
import { copyObject } from './copy.js';
import type { OutgoingPart, UploadContext } from './upload-context.js';

/**
 * Streams a blob into S3: parts of `partSize`, up to `uploadParallelism` of them travelling while
 * the client sends; a blob smaller than a part is one PUT at commit. The multipart upload targets
 * the blob key when the digest is known up front (an uncompleted upload is invisible), else a
 * staging key that commit copies. Every run of parts stored from the first is a checkpoint any
 * process can continue from with the handle alone. Hand-written: lib-storage's Upload can neither
 * continue from another process's checkpoint nor report which parts are stored for good.
 */
export class S3Upload implements Upload {
  readonly checkpointBytes: number;
  readonly rereadable: boolean;
  /** The part being filled. */
  private readonly filling: FillingPart;
  private uploadId: string | undefined;
  private creating: Promise<string> | undefined;
  /**
   * S3 completed the multipart upload: the bytes are whole at `key`, and only the copy into
   * place may be left. A commit tried again after that copy failed copies again, and only that
   * (completing once more would name no upload).
   */
  private completed = false;
  /**
   * The blob key a commit stored this upload's bytes under. None of them is held here after
   * that, so a commit tried again (its claim failed after the bytes landed: the hold's write,
   * say) must send nothing: a single PUT would store an empty object as the blob.
   */
  private committedTo: string | undefined;
  private readonly key: string;
  private readonly calls: MultipartCalls;
  private nextPart: number;
  /** ETags of stored parts, by part number. */
  private readonly stored = new Map<number, string>();
  /** Parts 1..contiguous are all stored: the checkpoint. */
  private contiguous: number;
  private readonly inflight = new Set<Promise<void>>();
  /** Parts S3 did not take, kept (with their budget) to be sent again once it answers. */
  private readonly failed: RefusedParts;
  private failure: unknown;
  /** Set by abort: nothing more may be written or committed through this upload. */
  private aborted = false;
  /** Bytes of the blob this upload has taken, counting those of a checkpoint it continues. */
  private accepted: number;
  /** The last part, shorter than the others; no checkpoint reaches past it. */
  private shortPart = 0;
  private readonly size: BlobSize;
  /** What is on disk while no stream writes (see suspend). */
  private readonly spilled: SpilledParts;
  private readonly onDurable: ((checkpoint: Checkpoint) => void) | undefined;
  /** Whether the stream is quiet, for the budget's idle holders. */
  private readonly quiet: QuietUpload;

  constructor(
    private readonly context: UploadContext,
    options: UploadOptions,
  ) {
    this.onDurable = options.onDurable;
    this.spilled = new SpilledParts(context.spill);
    const resume = options.resume ? parseCheckpoint(context.keys, options.resume, context.budget.limit) : undefined;
    if (resume) {
      this.key = resume.key;
      this.uploadId = resume.uploadId;
      this.checkpointBytes = resume.partSize;
      resume.etags.forEach((etag, i) => this.stored.set(i + 1, etag));
      this.contiguous = resume.etags.length;
      this.accepted = options.resume!.offset;
    } else {
      this.key = options.target
        ? context.keys.blob(options.target)
        : context.keys.staging(`${new Date().toISOString().slice(0, 10)}/${randomUUID()}`);
      // recorded in every checkpoint: a daemon restarted with another --part-size still
      // knows where the stored parts end
      this.checkpointBytes = context.partSize;
      this.contiguous = 0;
      this.accepted = 0;
    }
    // a staging upload can be completed where it is and read back (see reopen.ts)
    this.rereadable = this.key.startsWith(context.keys.staging(''));
    this.nextPart = this.contiguous + 1;
    this.size = new BlobSize(this.checkpointBytes, options.sizeHint ?? 0);
    this.calls = new MultipartCalls(context.s3, this.key);
    this.filling = new FillingPart(
      context,
      this.spilled,
      {
        whole: this.checkpointBytes,
        end: (buffered) => this.size.partEnd(buffered, this.accepted),
        proven: () => this.nextPart > 1,
      },
      () => this.holdsChanged(),
    );
    this.failed = new RefusedParts(context, this.spilled, () => this.holdsChanged());
    this.quiet = new QuietUpload(this.filling, this.failed, () => this.aborted);
  }

  /**
   * Accepts a chunk. It fails only before accepting anything (when parts sent earlier could
   * not be stored, even on a new attempt), so the caller's count of accepted bytes stays right
   * and the same ingest can go on once S3 is back. A wait for buffer space ends when `signal`
   * aborts.
   */
  write(chunk: Buffer, signal?: AbortSignal): Promise<void> {
    return this.quiet.using(() => this.take(chunk, signal));
  }

  private async take(chunk: Buffer, signal?: AbortSignal): Promise<void> {
    this.checkOpen();
    this.size.check(this.accepted, chunk.length);
    if (this.completed) throw failedPrecondition(`the upload to ${this.key} is complete and takes no more bytes; commit it, or write the content again from offset 0`);
    await this.recover(signal);
    if (chunk.length === 0) return;
    // parts after a failed COMMIT's short last one: S3 would refuse every completion (EntityTooSmall)
    if (this.shortPart > 0) throw startOver(`the upload to ${this.key} sent its last part for a COMMIT and takes no more bytes; write the content again from offset 0`);
    const filling = this.filling;
    await filling.unspill(signal);
    // Copied into the part at once: the message it came in is let go now, not a part later.
    for (let from = 0; from < chunk.length; ) {
      // A part starts filling only once fewer than --upload-parallelism are in flight, so an
      // upload holds that many part buffers at most, as lib-storage's queue does: one filling
      // beside them all was a buffer more (8 MiB of the bench's peak) for no throughput. With 1,
      // one still fills while one is in flight, or the client would wait out every part's upload.
      // a wait ends with the client only before any of the chunk is taken (see write)
      const until = from === 0 ? signal : undefined;
      if (filling.buffered === 0) await this.room(Math.max(2, this.context.uploadParallelism), until);
      // a chunk that completes its part waits for the part's slot before any of it is taken, so
      // that sendPart does not wait for one without the signal (with --upload-parallelism 1)
      if (until && filling.buffered + chunk.length - from >= this.checkpointBytes) await this.room(this.context.uploadParallelism, until);
      await filling.makeRoom(chunk.length - from, until);
      const part = filling.buffer!;
      const n = Math.min(chunk.length - from, part.length - filling.buffered);
      chunk.copy(part, filling.buffered, from, from + n);
      filling.buffered += n;
      this.accepted += n;
      from += n;
      if (filling.buffered === this.checkpointBytes) await this.sendPart();
    }
  }

  /**
   * The unfinished part goes to a file and its buffer and budget are given back: an ingest
   * without a stream holds no memory. Settles only once the parts already travelling have
   * landed or failed, whether or not the part could go to disk.
   */
  suspend(): Promise<void> {
    return this.quiet.using(() => this.putAside());
  }

  private async putAside(): Promise<void> {
    if (this.aborted) return;
    try {
      await this.filling.spill();
    } finally {
      // the caller records the ingest as held by no one once this settles: a part landing after
      // that would be in no record, and in an upload another daemon may have taken up
      await this.settle();
    }
    // Parts S3 refused (it was away) would hold their memory until a resume: to disk as well.
    await this.failed.spill();
  }

  /**
   * The budget's idle holders know the upload while it holds budget: for its part being filled,
   * or for parts S3 refused, which a quiet stream would otherwise keep until its next message.
   */
  private holdsChanged(): void {
    const holders = this.context.budget.holders;
    if (this.filling.held > 0 || this.failed.count > 0) holders?.add(this.quiet);
    else holders?.delete(this.quiet);
  }

  inUse<T>(work: () => Promise<T>): Promise<T> {
    return this.quiet.using(work);
  }

  forget(): Promise<void> {
    return this.quiet.using(() => this.letGo());
  }

  /** Nothing more goes through this upload: its memory, budget and spilled bytes are given back. */
  private async letGo(): Promise<void> {
    this.aborted = true;
    // memory first: a spilled file that cannot be removed (EACCES, EIO) must not keep the budget
    this.filling.discard();
    await this.settle();
    this.failed.drop();
    await this.spilled.drop();
  }

  /**
   * Everything but the completion: the last part joins those still travelling (they are not
   * waited for first), and every part is stored. A blob of one PUT has nothing to send before it.
   */
  prepare(digest: string, signal?: AbortSignal): Promise<void> {
    return this.quiet.using(() => this.prepareUnder(digest, signal));
  }

  private async prepareUnder(digest: string, signal?: AbortSignal): Promise<void> {
    this.checkOpen();
    // the refused parts first: taking the unfinished part back holds budget while they wait for theirs
    await this.recover(signal);
    await this.filling.unspill(signal);
    if (this.singlePut()) return;
    // An upload straight to a blob key (started for an expected digest) can only become that blob.
    if (!this.key.startsWith(this.context.keys.staging('')) && this.key !== this.context.keys.blob(digest)) {
      await this.abort();
      throw startOver(`ingest was started for ${this.context.keys.digestOfKey(this.key) ?? this.key} but its content is ${digest}`);
    }
    if (this.filling.buffered > 0) {
      this.shortPart = this.nextPart;
      await this.sendPart();
    }
    await this.settle();
    await this.recover(signal);
    // S3 completes an upload with gaps in its part numbers: only an upload with every part is
    // the blob that was verified
    for (let n = 1; n < this.nextPart; n++) {
      if (!this.stored.has(n)) throw startOver(`part ${n} of the upload to ${this.key} is not stored; write the content again from offset 0`);
    }
  }

  /** No multipart upload was begun: the blob is one PUT at commit. */
  private singlePut(): boolean {
    return !this.completed && this.uploadId === undefined && this.creating === undefined && this.inflight.size === 0;
  }

  commit(digest: string, size: number): Promise<void> {
    return this.quiet.using(() => this.commitUnder(digest, size));
  }

  private async commitUnder(digest: string, size: number): Promise<void> {
    const finalKey = this.context.keys.blob(digest);
    if (this.committedTo !== undefined) return this.committedAgain(finalKey);
    await this.prepareUnder(digest);
    if (this.singlePut()) {
      // the buffer is dropped only once S3 has it, so a failed PUT can be committed again
      await this.context.s3.put(finalKey, this.filling.buffer?.subarray(0, this.filling.buffered) ?? Buffer.alloc(0));
      this.committedTo = finalKey;
      this.filling.discard();
      this.context.remember(digest, { size, lastModified: new Date() });
      return;
    }
    if (!this.completed) {
      await this.calls.completeOnce(this.uploadId!, this.stored, size);
      this.completed = true;
      this.uploadId = undefined;
      this.creating = undefined;
    }
    if (this.key !== finalKey) {
      await copyObject(this.context.s3, this.key, finalKey, size);
      this.committedTo = finalKey;
      await this.context.s3.delete(this.key).catch(() => undefined);
    }
    this.committedTo = finalKey;
    this.context.remember(digest, { size, lastModified: new Date() });
  }

  /** The bytes stand where an earlier commit stored them, or the ingest starts over. */
  private async committedAgain(finalKey: string): Promise<void> {
    const stored = finalKey === this.committedTo && (await this.context.s3.sendUnlessMissing(new HeadObjectCommand({ Bucket: this.context.s3.name, Key: finalKey }), `HEAD ${finalKey}`));
    if (!stored) throw startOver(`the bytes of this ingest were stored as ${this.committedTo} by an earlier commit and are not there now; write the content again from offset 0`);
  }

  private checkOpen(): void {
    // e.g. after a commit found the bytes were not those the upload was started for
    if (this.aborted) throw startOver(`the upload to ${this.key} was abandoned; write the content again from offset 0`);
  }

  abort(): Promise<void> {
    return this.quiet.using(() => this.abortUnder());
  }

  private async abortUnder(): Promise<void> {
    await this.letGo();
    const uploadId = this.uploadId ?? (await this.creating?.catch(() => undefined));
    this.uploadId = undefined;
    this.creating = undefined;
    if (uploadId !== undefined) await this.calls.abort(uploadId);
    // completed in the staging area, never copied into place: nothing else would remove it
    if (this.completed && this.rereadable) {
      this.completed = false;
      await this.context.s3.delete(this.key);
    }
  }

  handle(): UploadHandle | undefined {
    if (this.uploadId === undefined) return undefined;
    const etags: string[] = [];
    for (let n = 1; n <= this.contiguous; n++) etags.push(this.stored.get(n)!);
    return { key: this.key, uploadId: this.uploadId, partSize: String(this.checkpointBytes), etags };
  }

  /** Sends the parts S3 refused again, if the failure was one that may pass (S3 unavailable). */
  private async recover(signal?: AbortSignal): Promise<void> {
    if (!this.failure) return;
    if (!(this.failure instanceof StoreError && this.failure.kind === 'unavailable')) throw this.failure;
    await this.settle();
    const refused = this.failure;
    this.failure = undefined;
    // Those still in memory hold their budget already. Those on disk come back one at a time,
    // each sent before the next is read: loading them all first held budget while waiting for
    // more, and ingests resuming together after an outage could hold all of it between them.
    for (const part of this.failed.takeAll()) {
      await this.room();
      this.launch(part);
    }
    try {
      for (let length = this.spilled.nextRefusedLength(); length !== undefined && !this.failure; length = this.spilled.nextRefusedLength()) {
        await this.room();
        if (this.failure) break;
        this.launch(await this.failed.load(length, signal));
      }
    } catch (err) {
      // not read back (no room in time, or the client left): the next write or commit tries again
      this.failure ??= refused;
      throw err;
    }
    await this.settle();
    if (this.failure) throw this.failure;
  }

  /** Waits until fewer than `slots` parts are in flight; see fewerInFlight. */
  private room(slots = this.context.uploadParallelism, signal?: AbortSignal): Promise<void> {
    return fewerInFlight(this.inflight, slots, signal);
  }

  /** The part filled so far goes out, taking its buffer's reservation along until S3 has it. */
  private async sendPart(): Promise<void> {
    const { body, buffer, reservation } = this.filling.take();
    await this.room();
    this.launch({ partNumber: this.nextPart++, body, buffer: buffer ?? body, reservation });
  }

  private launch(part: OutgoingPart): void {
    const { partNumber, body } = part;
    const sending: Promise<void> = (async () => {
      try {
        const uploadId = this.uploadId ?? (await this.create());
        this.stored.set(partNumber, await this.calls.uploadPart(uploadId, partNumber, body));
        this.context.budget.release(part.reservation);
        // the SDK is done with the body once send() settles, retries included
        this.context.parts.give(part.buffer);
        this.advance();
      } catch (err) {
        this.failure ??= err;
        this.failed.add(part);
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
    this.creating ??= this.calls
      .create()
      .then((uploadId) => {
        this.uploadId = uploadId;
        this.onDurable?.({ offset: 0, handle: this.handle()! });
        return uploadId;
      })
      .catch((err: unknown) => {
        this.creating = undefined;
        throw err;
      });
    return this.creating;
  }

  private async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}
