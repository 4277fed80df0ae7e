import { newHasher } from '../digest.js';

/**
 * A digest computed as bytes arrive. The resumable kind (native-sha256.ts, else hash-workers.ts)
 * can save its state, so an ingest whose bytes already sit in the bucket can be continued after a
 * restart (by this daemon or another sharing the bucket) without reading those bytes back: S3
 * cannot read the parts of an uncompleted multipart upload, and one under a blob's key cannot be
 * completed to be read without becoming that blob. Node's own hash cannot be saved; it serves
 * ingests whose stored bytes can be read back instead (the staging area, a local directory) and
 * those stored in one piece at commit, which have nothing to resume.
 */
export interface RunningHash {
  readonly algorithm: string;
  /** Resolves once the hash can take more; waiting here is back-pressure. */
  update(data: Uint8Array): void | Promise<void>;
  /** `<algorithm>:<hex>` of everything so far; more data may follow. */
  digest(): Promise<string>;
  /** The state to continue from, or undefined when this kind cannot be saved. */
  save(): Promise<Uint8Array | undefined>;
  close(): void;
}

export function newRunningHash(algorithm = 'sha256'): RunningHash {
  const hash = newHasher(algorithm);
  return {
    algorithm,
    update: (data) => void hash.update(data),
    // copy(): the running hash stays open for more data
    digest: async () => `${algorithm}:${hash.copy().digest('hex')}`,
    save: async () => undefined,
    close: () => undefined,
  };
}


/** Where hashes whose state can be saved come from (the daemon's pool of hash workers). */
export interface SaveableHashes {
  /** A new hash, or one continuing from `state` (what `save` returned). */
  open(algorithm: string, state?: Uint8Array): Promise<RunningHash>;
}

/**
 * A saveable hash put aside while no stream writes: its saved state, and none of the memory
 * (a worker's ring) the live one holds. `resume` makes it live again.
 */
export class SuspendedHash implements RunningHash {
  constructor(
    readonly algorithm: string,
    readonly state: Uint8Array,
  ) {}

  update(): never {
    throw new Error('a suspended hash takes no bytes; resume it first');
  }

  digest(): Promise<string> {
    return Promise.reject(new Error('a suspended hash has no digest; resume it first'));
  }

  async save(): Promise<Uint8Array> {
    return this.state;
  }

  close(): void {}

  resume(hashes: SaveableHashes): Promise<RunningHash> {
    return hashes.open(this.algorithm, this.state);
  }
}
