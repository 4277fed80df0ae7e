import { parseDigest } from '../digest.js';
import type { Checkpoints } from './checkpoints.js';
import type { Ingest } from './ingest.js';
import { newRunningHash, type RunningHash, type SaveableHashes } from './running-hash.js';
import { now, type Instant } from '../clock.js';

/** New ingests, and new uploads and hashes for ingests starting over. */
export class IngestStarts {
  constructor(
    private readonly checkpoints: Checkpoints,
    private readonly hashes: SaveableHashes,
    /** Whether ingests that may span several checkpoints keep what a crash needs to continue them. */
    private readonly crashResume: boolean,
  ) {}

  async newIngest(ns: string, ref: string, total: number, expected: string, startedAt: Instant): Promise<Ingest> {
    const ingest: Ingest = {
      ns,
      ref,
      startedAt,
      updatedAt: now(),
      total,
      expected,
      offset: 0,
      hasher: undefined as never,
      upload: undefined as never,
      lockedSince: undefined,
      recorded: false,
      resumeBy: 'none',
      states: new Map(),
    };
    await this.startUpload(ingest);
    return ingest;
  }

  /**
   * A new, empty upload and hash for the ingest. Only an ingest that may span several
   * checkpoints, when crashes are to be survived, and whose stored bytes cannot be read back
   * (they go straight under the blob's key) pays for a hash whose state can be saved.
   */
  async startUpload(ingest: Ingest): Promise<void> {
    // Both are made before the ingest takes them: a hash that cannot be opened leaves the ingest
    // as it was (on a restart, its next message tries again).
    const upload = this.checkpoints.watchedUpload(ingest, { target: ingest.expected || undefined, sizeHint: ingest.total });
    const algorithm = ingest.expected ? parseDigest(ingest.expected).algorithm : 'sha256';
    const checkpointed = this.crashResume && (ingest.total === 0 || ingest.total >= upload.checkpointBytes);
    const resumeBy = !checkpointed ? 'none' : upload.rereadable ? 'rereading' : 'state';
    const hasher = resumeBy === 'state' ? await this.hashes.open(algorithm) : newRunningHash(algorithm);
    (ingest.hasher as RunningHash | undefined)?.close();
    ingest.upload = upload;
    ingest.resumeBy = resumeBy;
    ingest.hasher = hasher;
    ingest.offset = 0;
    ingest.durable = undefined;
    ingest.resumable = undefined;
    ingest.states.clear();
  }
}
