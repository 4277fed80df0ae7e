import { invalidArgument } from '../errors.js';

const MAX_NAME_BYTES = 1024;

/** Record names become S3 keys under the manifests prefix; refuse what would escape or confuse it. */
export function validateRecordName(name: string): string {
  if (name === '') throw invalidArgument('record name is empty');
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) throw invalidArgument(`record name of ${bytes} bytes is longer than ${MAX_NAME_BYTES}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) throw invalidArgument(`record name ${JSON.stringify(name)} contains a control character`);
  if (name.startsWith('/') || name.split('/').some((s) => s === '..' || s === '.')) {
    throw invalidArgument(`record name ${JSON.stringify(name)} has an absolute or relative path segment`);
  }
  return name;
}
