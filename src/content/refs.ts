import { invalidArgument } from '../errors.js';

/** containerd sets no bound; ours keeps metadata keys and log lines sane. */
const MAX_REF_BYTES = 1024;

/**
 * Ingest refs are free-form client strings (`layer-sha256:…`, a bare digest, …). They never
 * become a path (metadata keys encode them), but control characters and parent-directory
 * segments have no legitimate use and are refused so logs and listings stay unambiguous.
 */
export function validateRef(ref: string): string {
  if (ref === '') throw invalidArgument('ref is empty');
  const bytes = Buffer.byteLength(ref);
  if (bytes > MAX_REF_BYTES) throw invalidArgument(`ref of ${bytes} bytes is longer than ${MAX_REF_BYTES}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(ref)) throw invalidArgument(`ref ${JSON.stringify(ref)} contains a control character`);
  if (ref.split('/').includes('..')) throw invalidArgument(`ref ${JSON.stringify(ref)} contains a ".." segment`);
  return ref;
}
