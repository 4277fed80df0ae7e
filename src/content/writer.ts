import { digestOf, parseDigest } from '../digest.js';
import { ContentExists, StartOver, failedPrecondition, invalidArgument, isStoreError, outOfRange, startOver, unavailable } from '../errors.js';
import { validateLabels, type Labels } from '../labels.js';
import type { Upload } from '../blobstore/types.js';
import type { ClaimOutcome, ClaimRequest } from './claims.js';
import { liveStatus, statusOf, type Ingest } from './ingest.js';
import type { IngestStatus } from './types.js';
import { now } from '../clock.js';

/**
 * Uploads given up since the record's key was last known this ingest's, kept to tell its own
 * record from another daemon's (see Ingest.keyInDoubt). A client restarting faster than records
 * are written would grow the list without end; past this the oldest goes, and a record that
 * names it reads as another's: the ingest then records nothing more (it is no longer continued
 * after a crash), which is safe for everyone else.
 */
export const MAX_REPLACED_UPLOADS = 16;

/** How long an "absent" answer for an expected digest stands for the same Write stream. */
const RECHECK_AFTER_MS = 2_000;

/** What a Writer needs from the ingest side of the store, and all it sees of it. */
export interface WriterHost {
  /** AlreadyExists when `digest` is stored, after making the blob a member of `ns`. */
  failIfPresent(ns: string, digest: string): Promise<void>;
  /** Stores the verified bytes with `ns`'s hold, or finds them stored and holds them (see claims.ts). */
  claim(ns: string, digest: string, request: ClaimRequest): Promise<ClaimOutcome>;
  /** A new, empty upload and hash for the ingest. */
  restartUpload(ingest: Ingest): Promise<void>;
  /** The ingest's bytes reached checkpoint offset `offset`. */
  reachedCheckpoint(ingest: Ingest, offset: number): void;
  /**
   * The stream lets go of the ingest, either for good ('done': it was committed or discarded)
   * or keeping it for a resume ('released').
   */
  finish(ingest: Ingest, outcome: 'done' | 'released'): Promise<void>;
  /** Removes the bucket's record of the ingest, if it has one. */
  removeRecord(ingest: Ingest): Promise<void>;
  /** The stream gives the ingest up for good: lets go of it, aborts its upload and removes its record. */
  discard(ingest: Ingest): Promise<void>;
}

/** One Write stream's hold on an ingest. */
export class Writer {
  private released = false;
  private checkedExpected: string;
  /** When this stream last found `checkedExpected` absent from the store. */
  private checkedAt = 0;

  /**
   * The digest this stream expects: given at its open or by a later message. As in containerd,
   * each stream starts with its own; an earlier stream's expectation does not carry over.
   */
  private expected: string;

  /**
   * The total this stream's messages declared, as containerd keeps it: for this stream's COMMIT
   * only. The ingest keeps the total it was opened with, so a COMMIT with a wrong size does not
   * make the next stream's correct one look like a different ingest.
   */
  private total = 0;

  constructor(
    private readonly host: WriterHost,
    private readonly ingest: Ingest,
    openExpected: string,
  ) {
    this.expected = openExpected;
    this.checkedExpected = openExpected;
    // openWriter has just checked the expected digest, when there was one
    if (openExpected) this.checkedAt = Date.now();
  }

  get ref(): string {
    return this.ingest.ref;
  }

  /**
   * Where the ingest stands after a WRITE, with the digest of its bytes so far where this stream
   * expects none: containerd's client takes its writer's Digest() from these answers alone, and
   * its walking differ (`ctr snapshots diff`, BuildKit's containerd worker) writes a diff whose
   * digest it does not know, then commits and looks it up by that. A stream that declared its
   * digest commits against it and gets an empty one: a hash in a worker thread (SHA-256 without
   * the CPU's SHA instructions, SHA-512) would otherwise hold each answer until it caught up,
   * and a client that awaits every answer would lose the hashing's overlap with its sending.
   */
  async progress(): Promise<IngestStatus & { digest: string }> {
    const status = this.withTotal(liveStatus(this.ingest));
    return { ...status, digest: this.expected ? '' : await this.digestSoFar() };
  }

  async status(): Promise<IngestStatus & { digest: string }> {
    const digest = await this.digestSoFar();
    const ingest = this.ingest;
    return { ...this.withTotal(ingest.bytesGone ? liveStatus(ingest) : statusOf(ingest)), digest };
  }

  /** The digest of the bytes stored, once any restart is done: of none where a restart that failed left them gone. */
  private async digestSoFar(): Promise<string> {
    await this.ingest.restarting?.catch(() => undefined);
    const ingest = this.ingest;
    if (ingest.bytesGone) return digestOf('', ingest.hasher.algorithm);
    return ingest.hasher.digest();
  }

  /** This stream's answers carry the latest total it declared, as containerd's do. */
  private withTotal(status: IngestStatus): IngestStatus {
    return this.total > 0 ? { ...status, total: this.total } : status;
  }

  /** Applies the `total` and `expected` a request carries, as containerd does for every message. */
  async update(total: number, expected: string): Promise<void> {
    const ingest = this.ingest;
    if (total < 0) throw invalidArgument(`ref ${JSON.stringify(ingest.ref)}: negative total ${total}`);
    if (total > 0) this.total = total;
    if (expected === '') return;
    const d = parseDigest(expected).value;
    ingest.expected = d;
    this.expected = d;
    if (d === this.checkedExpected) return;
    this.checkedExpected = d;
    try {
      await this.host.failIfPresent(ingest.ns, d);
      this.checkedAt = Date.now();
    } catch (err) {
      // Only content found stored ends the ingest (containerd aborts it then too); a check S3
      // could not answer keeps every byte, and the next message with this digest asks again.
      if (isStoreError(err, 'already-exists')) await this.discard();
      else this.checkedExpected = '';
      throw err;
    }
  }

  /**
   * Appends `data` at `offset`: 0 restarts the ingest, any other value must be the current size.
   * `signal` aborts when nobody awaits the answer any longer: a wait for buffer space ends then.
   */
  async write(offset: number, data: Buffer, signal?: AbortSignal): Promise<void> {
    await this.ingest.restarting?.catch(() => undefined);
    const ingest = this.ingest;
    if (offset < 0) throw invalidArgument(`ref ${JSON.stringify(ingest.ref)}: negative offset ${offset}`);
    // bytes found gone (a restart that failed) leave nothing to continue: the ingest is at 0
    const current = ingest.bytesGone ? 0 : ingest.offset;
    if (offset > 0 && offset !== current) {
      throw outOfRange(`ref ${JSON.stringify(ingest.ref)}: write @${offset} must occur at current offset ${current}`);
    }
    if (offset === 0 && (ingest.offset > 0 || ingest.bytesGone)) await this.restart();
    if (data.length === 0) return;
    // the latest total this stream declared, else the one the ingest was opened with
    const declared = this.total > 0 ? this.total : ingest.total;
    if (declared > 0 && ingest.offset + data.length > declared) {
      throw outOfRange(
        `ref ${JSON.stringify(ingest.ref)}: write of ${data.length} bytes @${ingest.offset} goes past the declared total ${declared}`,
      );
    }
    // Pieces end on checkpoint offsets, where the hash state is kept for a crash to resume from.
    const every = ingest.upload.checkpointBytes;
    // a record the ref left must be dealt with before this ingest can record itself (a part stored)
    if (ingest.leftover && ingest.offset + data.length >= every) await this.leftover();
    for (let rest = data; rest.length > 0; ) {
      const room = every - (ingest.offset % every);
      const piece = rest.length <= room ? rest : rest.subarray(0, room);
      const upload = ingest.upload;
      await upload.write(piece, signal).catch((err: unknown) => this.startOverIfGone(err, upload));
      try {
        await ingest.hasher.update(piece);
      } catch (err) {
        await this.startOverUnhashed(err, upload);
      }
      ingest.offset += piece.length;
      ingest.updatedAt = now();
      rest = rest.subarray(piece.length);
      if (ingest.offset % every === 0) this.host.reachedCheckpoint(ingest, ingest.offset);
    }
  }

  /**
   * Verifies size and digest, then makes the blob visible. Returns the committed digest. The
   * ingest survives a failed verification (the client may abort or start over), as in containerd.
   */
  /** `signal`: the client went away; a wait for buffer space (a part taken back from disk) ends then. */
  async commit(total: number, expected: string, labels: Labels, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
    await this.ingest.restarting?.catch(() => undefined);
    const ingest = this.ingest;
    validateLabels(labels, `ref ${JSON.stringify(ingest.ref)}`);
    // not reached through the Write stream, whose COMMIT goes through write() first (refused
    // there unless at 0, which restarts): kept for any other caller
    if (ingest.bytesGone) throw goneError(ingest);
    const size = ingest.offset;
    const wanted = total > 0 ? total : this.total > 0 ? this.total : ingest.total;
    if (wanted > 0 && wanted !== size) {
      throw failedPrecondition(`${JSON.stringify(ingest.ref)} failed size validation: ${size} != ${wanted}`);
    }
    const digest = await ingest.hasher.digest();
    const want = expected || this.expected;
    if (want !== '' && parseDigest(want).value !== digest) {
      throw failedPrecondition(`${JSON.stringify(ingest.ref)}: unexpected commit digest ${digest}, expected ${want}`);
    }
    // A check this stream made moments ago stands; otherwise the store is asked. (Storing bytes
    // that appeared meanwhile again is harmless: they are the same bytes.)
    const recentlyChecked = digest === this.checkedExpected && Date.now() - this.checkedAt < RECHECK_AFTER_MS;
    const upload = ingest.upload;
    let preparing: Promise<void> | undefined;
    const claiming = () =>
      this.host
        .claim(ingest.ns, digest, {
          size,
          labels,
          absent: recentlyChecked,
          before: this.leftover(),
          prepare: () => (preparing = upload.prepare(digest, signal).catch((err: unknown) => this.startOverIfGone(err, upload))),
          store: () => upload.commit(digest, size).catch((err: unknown) => this.startOverIfGone(err, upload)),
          alongside: () => this.host.removeRecord(ingest),
        })
        .catch(async (err: unknown) => {
          // A claim may fail (its existence check, say) while the upload's last part is still on
          // its way: should that find the bytes gone, the restart it begins is done before the
          // COMMIT answers, so the stream lets go of the ingest only as the restart left it.
          await preparing?.catch(() => undefined);
          throw err;
        });
    // the bytes buffered for a single PUT stay in memory through the checks around it
    const outcome = await (upload.inUse ? upload.inUse(claiming) : claiming());
    if (outcome === 'exists') {
      await this.discard();
      throw new ContentExists(digest);
    }
    this.released = true;
    await this.host.finish(ingest, 'done');
    return { digest, size };
  }

  /** Lets go of the ref without committing; the ingest stays resumable. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    // The ingest is put aside (and recorded) only as a restart under way leaves it. A COMMIT
    // waits for the one its failed upload began (see commit); this holds whatever began one.
    await this.ingest.restarting?.catch(() => undefined);
    await this.host.finish(this.ingest, 'released');
  }

  /**
   * The look-up of a record an earlier ingest of the ref left, which the open did not wait for
   * (see Ingests.openWriter). When it refuses this ingest, the ingest goes, and the record stays
   * for an Abort.
   */
  private leftover(): Promise<void> | undefined {
    return this.ingest.leftover?.catch(async (err: unknown) => {
      if (!this.released) await this.discard();
      throw err;
    });
  }

  private async discard(): Promise<void> {
    this.released = true;
    // a restart still under way would otherwise open a hash and an upload after they are given up
    await this.ingest.restarting?.catch(() => undefined);
    await this.host.discard(this.ingest);
  }

  /**
   * The ingest's stored bytes are gone (its upload completed or aborted elsewhere, by another
   * daemon continuing it, say): it starts over at offset 0 before the error goes to the client,
   * so that Status says 0, where containerd's clients resume.
   */
  private async startOverIfGone(err: unknown, upload: Upload): Promise<never> {
    // An upload given up already (a late answer of the one before a restart) names no bytes now,
    // and an ingest this stream let go of is nobody's to restart.
    if (err instanceof StartOver && upload === this.ingest.upload && !this.released) await this.restart().catch(() => undefined);
    throw err;
  }

  /**
   * The upload took a piece its hash did not (a hash worker that failed): the two no longer name
   * the same bytes, and a next WRITE at the old offset would store the piece twice. The ingest
   * starts over, as one whose bytes are gone.
   */
  private async startOverUnhashed(err: unknown, upload: Upload): Promise<never> {
    if (upload === this.ingest.upload && !this.released) await this.restart().catch(() => undefined);
    throw err;
  }

  /**
   * One restart at a time, kept on the ingest: every message after waits for it, of this stream or
   * a later one (its failure is met, if at all, by what they do next, as by the stream that began
   * it), and Status and ListStatuses answer offset 0 meanwhile: a client that asks where to
   * resume must be told 0, not the offset whose bytes are gone.
   */
  private restart(): Promise<void> {
    const ingest = this.ingest;
    ingest.bytesGone = true;
    ingest.restarting ??= (async () => {
      // The recorded upload is given up. Where its bytes went because another daemon took the
      // ingest up from its record, the record's key is that daemon's now: it is this ingest's
      // again only once read to be (see IngestRecords.settleKey). A local file's handle may be
      // known only from the checkpoint the ingest was continued from.
      const given = ingest.resumable?.checkpoint.handle ?? ingest.durable?.handle ?? ingest.upload.handle();
      if ((ingest.recorded || ingest.keyInDoubt) && given) {
        ingest.keyInDoubt = { replaced: [...(ingest.keyInDoubt?.replaced ?? []), given].slice(-MAX_REPLACED_UPLOADS) };
        ingest.recorded = false;
      }
      // nothing of the gone bytes may be recorded from here: no checkpoint of them is continued
      clearTimeout(ingest.checkpointDue);
      ingest.checkpointDue = undefined;
      ingest.durable = undefined;
      ingest.resumable = undefined;
      ingest.states.clear();
      try {
        // bytes that are gone may fail to be given up too: the new upload goes ahead regardless
        await ingest.upload.abort().catch(() => undefined);
        await this.host.restartUpload(ingest);
        ingest.bytesGone = false;
        ingest.updatedAt = now();
      } catch (err) {
        throw unavailable(`ref ${JSON.stringify(ingest.ref)}: could not start the ingest over (${err instanceof Error ? err.message : String(err)}); write from offset 0 again`, err);
      } finally {
        ingest.restarting = undefined;
      }
    })();
    return ingest.restarting;
  }
}

/** What a COMMIT of an ingest whose stored bytes are gone answers: the client starts over at 0. */
function goneError(ingest: Ingest): StartOver {
  return startOver(`ref ${JSON.stringify(ingest.ref)}: its stored bytes are gone; write the content again from offset 0`);
}
