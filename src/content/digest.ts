import { createHash, type Hash } from 'node:crypto';
import { createSHA256, createSHA384, createSHA512, type IHasher } from 'hash-wasm';
import { invalidArgument } from '../errors.js';

/** Algorithms OCI digests may name, with the length of their lower-case hex encoding. */
const ALGORITHMS: Readonly<Record<string, { hexLength: number; nodeName: string }>> = {
  sha256: { hexLength: 64, nodeName: 'sha256' },
  sha384: { hexLength: 96, nodeName: 'sha384' },
  sha512: { hexLength: 128, nodeName: 'sha512' },
};

export interface Digest {
  readonly algorithm: string;
  readonly hex: string;
  /** Canonical `<algorithm>:<hex>` form; safe to embed in an object key. */
  readonly value: string;
}

/**
 * Parses a digest strictly: lower-case hex of exactly the algorithm's length. Anything looser
 * would let two spellings name one blob, or let a crafted "digest" escape its key prefix.
 */
export function parseDigest(input: string): Digest {
  const shown = JSON.stringify(input.length > 150 ? `${input.slice(0, 150)}…` : input);
  const colon = input.indexOf(':');
  if (input === '') throw invalidArgument('digest is empty');
  if (colon <= 0) throw invalidArgument(`invalid digest ${shown}: expected <algorithm>:<hex>`);
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  const spec = ALGORITHMS[algorithm];
  if (!spec) throw invalidArgument(`invalid digest ${shown}: unsupported algorithm ${JSON.stringify(algorithm)}`);
  if (hex.length !== spec.hexLength || !/^[0-9a-f]+$/.test(hex)) {
    throw invalidArgument(
      `invalid digest ${shown}: ${algorithm} needs ${spec.hexLength} lower-case hex characters`,
    );
  }
  return { algorithm, hex, value: input };
}

export function isValidDigest(input: string): boolean {
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

export function newHasher(algorithm = 'sha256'): Hash {
  const spec = ALGORITHMS[algorithm];
  if (!spec) throw invalidArgument(`unsupported digest algorithm ${JSON.stringify(algorithm)}`);
  return createHash(spec.nodeName);
}

/**
 * A digest computed as bytes arrive. The resumable kind can save its state, so an ingest whose
 * bytes already sit in the bucket can be continued after a restart (by this daemon or another
 * sharing the bucket) without reading those bytes back: S3 cannot read the parts of an
 * uncompleted multipart upload. Node's own hash is four times faster but cannot be saved, so it
 * serves ingests that are stored in one piece at commit and have nothing to resume.
 */
export interface RunningHash {
  readonly algorithm: string;
  update(data: Uint8Array): void;
  /** `<algorithm>:<hex>` of everything so far; more data may follow. */
  digest(): string;
  /** The state to continue from, or undefined when this kind cannot be saved. */
  save(): Uint8Array | undefined;
}

export function newRunningHash(algorithm = 'sha256'): RunningHash {
  const hash = newHasher(algorithm);
  return {
    algorithm,
    update: (data) => void hash.update(data),
    // copy(): the running hash stays open for more data
    digest: () => `${algorithm}:${hash.copy().digest('hex')}`,
    save: () => undefined,
  };
}

const WASM_HASHERS: Readonly<Record<string, () => Promise<IHasher>>> = {
  sha256: createSHA256,
  sha384: createSHA384,
  sha512: createSHA512,
};

/** A running hash whose state can be saved; from `state` when given (what `save` returned). */
export async function newResumableHash(algorithm = 'sha256', state?: Uint8Array): Promise<RunningHash> {
  const create = WASM_HASHERS[algorithm];
  if (!create) throw invalidArgument(`unsupported digest algorithm ${JSON.stringify(algorithm)}`);
  const hasher = await create();
  hasher.init();
  if (state) {
    try {
      hasher.load(state);
    } catch (err) {
      throw invalidArgument(`saved ${algorithm} state is not valid: ${(err as Error).message}`);
    }
  }
  // A second instance finishes copies of the state, so this one stays open for more data.
  const peek = await create();
  return {
    algorithm,
    update: (data) => void hasher.update(data),
    digest: () => {
      peek.load(hasher.save());
      return `${algorithm}:${peek.digest('hex')}`;
    },
    save: () => hasher.save(),
  };
}

export function digestOf(data: Uint8Array | string, algorithm = 'sha256'): string {
  return `${algorithm}:${newHasher(algorithm).update(data).digest('hex')}`;
}
