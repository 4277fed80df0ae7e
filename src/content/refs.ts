import { failedPrecondition, invalidArgument, RefLocked } from '../errors.js';
import { encodeSegment } from '../metadata/documents.js';
import type { HeldRecord } from './holders.js';

/**
 * containerd sets no bound; ours is on the ref as its metadata key holds it (encoded, up to
 * three bytes a character), leaving room under S3's 1,024-byte keys for the prefixes.
 */
const MAX_ENCODED_REF_BYTES = 768;

/**
 * Ingest refs are free-form client strings (`layer-sha256:…`, a bare digest, …). They never
 * become a path (metadata keys encode them), but control characters and parent-directory
 * segments have no legitimate use and are refused so logs and listings stay unambiguous.
 */
export function validateRef(ref: string): string {
  if (ref === '') throw invalidArgument('ref is empty');
  const bytes = Buffer.byteLength(encodeSegment(ref));
  if (bytes > MAX_ENCODED_REF_BYTES) {
    throw invalidArgument(`ref is ${bytes} bytes once encoded for its key, longer than the ${MAX_ENCODED_REF_BYTES} allowed`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(ref)) throw invalidArgument(`ref ${JSON.stringify(ref)} contains a control character`);
  if (ref.split('/').includes('..')) throw invalidArgument(`ref ${JSON.stringify(ref)} contains a ".." segment`);
  return ref;
}

/**
 * An ingest continues only with the size it was begun with, as in containerd: bytes sent for
 * one blob must not be carried into another. Either side may leave the size undeclared (0).
 */
export function refuseOtherTotal(ref: string, existing: number, provided: number): void {
  if (provided > 0 && existing > 0 && provided !== existing) {
    throw failedPrecondition(
      `ref ${JSON.stringify(ref)}: provided total ${provided} differs from the ingest's total ${existing} (abort the ref to start over)`,
    );
  }
}

export function lockedError(ref: string, since: Date) {
  const held = Date.now() - since.getTime();
  return new RefLocked(`ref ${JSON.stringify(ref)} locked for ${(held / 1000).toFixed(3)}s (since ${since.toISOString()})`);
}

/** The ref is held by a stream on another daemon sharing the bucket (see Holders): Unavailable, which containerd's clients retry. */
export function lockedElsewhere(ref: string, record: HeldRecord) {
  const host = record.heldBy?.host ? ` on ${JSON.stringify(record.heldBy.host.slice(0, 100))}` : '';
  return new RefLocked(`ref ${JSON.stringify(ref)} locked: a Write stream of another daemon${host} holds it (its hold last renewed at ${record.heldAt})`);
}

/**
 * How long an Abort waits for a ref's stream to let go before it answers as locked. containerd,
 * as a content proxy's client, closes its writer and aborts the ref at once when it finds the
 * expected digest stored; its close only ends the stream's sending, so the Abort comes while
 * this daemon is still putting the ingest aside, and a refusal would leave the ingest (and its
 * upload) until --ingest-expiry.
 */
export const ABORT_WAITS_MS = 2_000;
const LOCK_POLL_MS = 25;

/** Resolves once `lockedSince` says the ref is free; past `waitMs`, throws it locked. */
export async function untilUnlocked(ref: string, lockedSince: () => Date | undefined, waitMs = ABORT_WAITS_MS): Promise<void> {
  const deadline = performance.now() + waitMs;
  for (let since = lockedSince(); since; since = lockedSince()) {
    if (performance.now() >= deadline) throw lockedError(ref, since);
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}
