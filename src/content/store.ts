import type { Logger } from 'pino';
import type { BlobStore, Cancellation } from '../blobstore/types.js';
import type { Labels } from '../labels.js';
import { Documents, LISTED_KEPT_BYTES } from '../metadata/documents.js';
import { ReclaimMarks } from '../metadata/reclaim-marks.js';
import { Claims } from './claims.js';
import { CommittedContent } from './committed.js';
import type { LiveIngests } from './ingest.js';
import { IngestRecords } from './ingest-records.js';
import { Ingests } from './ingests.js';
import { Memberships } from './memberships.js';
import type { MessageSize, ReadChunks } from './read-chunks.js';
import { ReclaimGuard } from '../metadata/reclaim-guard.js';
import type { SaveableHashes } from './running-hash.js';
import { IngestSweep } from './sweep.js';
import { RefWork } from './ref-work.js';
import type { ContentInfo, IngestStatus, References } from './types.js';
import type { Writer } from './writer.js';

interface ContentStoreOptions {
  logger: Logger;
  /**
   * Hashes whose state can be saved, for ingests that may be continued after a crash. The
   * daemon creates the pool (worker threads) and closes it when it stops.
   */
  hashes: SaveableHashes;
  /**
   * The namespace whose List shows every blob in the store, including blobs no namespace holds
   * (those BuildKit's own s3 cache wrote). Every other namespace lists only what it holds.
   */
  bucketNamespace?: string | undefined;
  /**
   * The namespace that sees only the blobs it holds: there Info, Read and Update of a blob it
   * does not hold are NotFound, though the bytes are stored. containerd, using the daemon as
   * its content backend, asks Info before writing and takes a blob it finds without writing,
   * which would leave it no hold here; so it writes, and the COMMIT that answers AlreadyExists
   * records its hold (see CommittedContent).
   */
  heldOnlyNamespace?: string | undefined;
  /** An ingest nobody has written to for this long is discarded, with its stored bytes. */
  ingestExpiryMs?: number | undefined;
  /** An upload in the staging area no ingest owns is discarded once this old. */
  orphanUploadGraceMs?: number | undefined;
  /**
   * Multi-part ingests keep a saveable hash (default), so another run continues them after a
   * crash; without it they use Node's hash, several times cheaper, and a crash starts them over.
   */
  crashResume?: boolean | undefined;
  /**
   * What besides a namespace's hold may need a blob (cache records, leases), asked after the
   * namespace deleted its hold; without it, only other namespaces' holds count.
   */
  references?: References | undefined;
}

/**
 * containerd's content store semantics (namespaced metadata over shared, digest-addressed
 * blobs) on top of a BlobStore. Bytes are shared by digest: any namespace (but the held-only
 * one) can Info and Read a blob that exists, as containerd does with its shared policy;
 * labels, listings and ingests belong to one namespace.
 */
export class ContentStore {
  private readonly committed: CommittedContent;
  private readonly ingests: Ingests;
  private readonly sweep: IngestSweep;
  private readonly live: LiveIngests;
  private readonly memberships: Memberships;

  /** Ingests this process holds. */
  get liveIngests(): number {
    return this.live.size;
  }

  constructor(blobs: BlobStore, options: ContentStoreOptions) {
    const { logger } = options;
    const docs = new Documents(blobs, { keepListedBytes: LISTED_KEPT_BYTES });
    const memberships = new Memberships(docs);
    this.memberships = memberships;
    const guard = new ReclaimGuard(new ReclaimMarks(docs), blobs);
    const references = options.references ?? { neededOutside: (ns, digest) => memberships.heldElsewhere(ns, digest) };
    const records = new IngestRecords(blobs, docs, memberships, logger);
    const live: LiveIngests = new Map();
    this.live = live;
    const refWork = new RefWork();
    // one for the Writes and the Updates: each must see the other's claims of a blob under way
    const claims = new Claims(blobs, memberships, guard);
    this.committed = new CommittedContent(blobs, memberships, claims, references, {
      bucketNamespace: options.bucketNamespace,
      heldOnlyNamespace: options.heldOnlyNamespace,
    });
    this.ingests = new Ingests({
      blobs,
      claims,
      records,
      live,
      refWork,
      hashes: options.hashes,
      logger,
      crashResume: options.crashResume ?? true,
    });
    this.sweep = new IngestSweep({
      blobs,
      memberships,
      records,
      live,
      refWork,
      logger,
      ingestExpiryMs: options.ingestExpiryMs ?? 24 * 3_600_000,
      orphanUploadGraceMs: options.orphanUploadGraceMs ?? 15 * 60_000,
    });
  }

  /**
   * Waits, at most `timeoutMs`, until no Write stream holds an ingest: streams cut at a stop put
   * their ingests aside, recording them as held by no one once their parts on the way have
   * landed, so that another daemon can take them up at once rather than once the holds lapse.
   */
  async streamsLetGo(timeoutMs: number): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (this.ingests.anyHeld && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  }

  /** Digests the ingests of this process expect: the collector keeps those blobs. */
  expectedByLiveIngests(): Set<string> {
    const out = new Set<string>();
    for (const ingest of this.live.values()) if (ingest.expected) out.add(ingest.expected);
    return out;
  }

  /** Namespaces in which this process holds ingests, those not recorded in the bucket yet included. */
  namespacesWithLiveIngests(): Set<string> {
    const out = new Set<string>();
    for (const ingest of this.live.values()) out.add(ingest.ns);
    return out;
  }

  /** Forgets what this process cached of `ns`, once the namespace was removed from the bucket. */
  forgetNamespace(ns: string): void {
    this.memberships.forget(ns);
  }

  /** See IngestSweep.run. */
  sweepExpiredIngests(now = Date.now()): Promise<number> {
    return this.sweep.run(now);
  }

  info(ns: string, digest: string): Promise<ContentInfo> {
    return this.committed.info(ns, digest);
  }

  /** `signal`: the client went away; an Update still waiting behind others of the blob gives its place up. */
  update(ns: string, digest: string, labels: Labels, paths: readonly string[], signal?: AbortSignal): Promise<ContentInfo> {
    return this.committed.update(ns, digest, labels, paths, signal);
  }

  list(ns: string, filters: readonly string[]): AsyncIterable<ContentInfo> {
    return this.committed.list(ns, filters);
  }

  delete(ns: string, digest: string): Promise<void> {
    return this.committed.delete(ns, digest);
  }

  read(ns: string, digest: string, offset: number, size: number, cancel?: Cancellation, messageSize?: MessageSize): Promise<ReadChunks> {
    return this.committed.read(ns, digest, offset, size, cancel, messageSize);
  }

  status(ns: string, ref: string): Promise<IngestStatus> {
    return this.ingests.status(ns, ref);
  }

  listStatuses(ns: string, filters: readonly string[]): Promise<IngestStatus[]> {
    return this.ingests.listStatuses(ns, filters);
  }

  abort(ns: string, ref: string): Promise<void> {
    return this.ingests.abort(ns, ref);
  }

  /** `signal`: the client went away; an open reading an ingest's stored bytes back stops. */
  openWriter(ns: string, ref: string, total: number, expected: string, signal?: AbortSignal): Promise<Writer> {
    return this.ingests.openWriter(ns, ref, total, expected, signal);
  }
}
