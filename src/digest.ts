import { createHash, type Hash } from 'node:crypto';
import { invalidArgument } from './errors.js';

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
  // only a refusal shows the input: every Read and Info parses a digest
  const shown = () => JSON.stringify(input.length > 150 ? `${input.slice(0, 150)}…` : input);
  const colon = input.indexOf(':');
  if (input === '') throw invalidArgument('digest is empty');
  if (colon <= 0) throw invalidArgument(`invalid digest ${shown()}: expected <algorithm>:<hex>`);
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  const spec = ALGORITHMS[algorithm];
  if (!spec) throw invalidArgument(`invalid digest ${shown()}: unsupported algorithm ${JSON.stringify(algorithm)}`);
  if (hex.length !== spec.hexLength || !/^[0-9a-f]+$/.test(hex)) {
    throw invalidArgument(
      `invalid digest ${shown()}: ${algorithm} needs ${spec.hexLength} lower-case hex characters`,
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

/** Whether some digest begins with `text`: a key prefix that a blob's key could fall under. */
export function couldBeginDigest(text: string): boolean {
  return Object.entries(ALGORITHMS).some(([algorithm, { hexLength }]) => {
    const head = `${algorithm}:`;
    if (text.length <= head.length) return head.startsWith(text);
    const hex = text.slice(head.length);
    return text.startsWith(head) && hex.length <= hexLength && /^[0-9a-f]*$/.test(hex);
  });
}

export function newHasher(algorithm = 'sha256'): Hash {
  const spec = ALGORITHMS[algorithm];
  if (!spec) throw invalidArgument(`unsupported digest algorithm ${JSON.stringify(algorithm)}`);
  return createHash(spec.nodeName);
}

export function digestOf(data: Uint8Array | string, algorithm = 'sha256'): string {
  return `${algorithm}:${newHasher(algorithm).update(data).digest('hex')}`;
}
