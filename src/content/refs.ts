import { invalidArgument } from '../errors.js';
import { encodeSegment } from '../metadata/documents.js';

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
