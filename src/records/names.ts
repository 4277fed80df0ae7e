import { invalidArgument } from '../errors.js';
import { shortened } from './shortened.js';

const MAX_NAME_BYTES = 1024;
/**
 * What a page token can be: base64url of where a page ended, an S3 key's tail of at most 1,024
 * bytes. No token List hands out is longer.
 */
const MAX_PAGE_TOKEN_CHARS = Math.ceil((MAX_NAME_BYTES * 4) / 3);
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** Record names become S3 keys under the manifests prefix; refuse what would escape or confuse it. */
export function validateRecordName(name: string): string {
  if (name === '') throw invalidArgument('record name is empty');
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) throw invalidArgument(`record name of ${bytes} bytes is longer than ${MAX_NAME_BYTES}`);
  if (CONTROL.test(name)) throw invalidArgument(`record name ${JSON.stringify(name)} contains a control character`);
  if (name.startsWith('/') || name.split('/').some((s) => s === '..' || s === '.')) {
    throw invalidArgument(`record name ${JSON.stringify(name)} has an absolute or relative path segment`);
  }
  return name;
}

/**
 * A List prefix goes to S3 as a key prefix: past a name's length it could match nothing, and S3
 * answers a control character with a listing its XML cannot carry. A partial name is fine
 * (`team/.` begins `team/.cache`), so the path rules of names do not apply; empty lists all.
 */
export function validateListPrefix(prefix: string): string {
  const bytes = Buffer.byteLength(prefix);
  if (bytes > MAX_NAME_BYTES) throw invalidArgument(`prefix of ${bytes} bytes is longer than a record name may be (${MAX_NAME_BYTES})`);
  if (CONTROL.test(prefix)) throw invalidArgument(`prefix ${shortened(prefix)} contains a control character`);
  return prefix;
}

/** Where the page a token names starts listing after: only what a List of this prefix could have given. */
export function pageTokenStart(token: string, prefix: string): string {
  if (token === '') return '';
  if (token.length > MAX_PAGE_TOKEN_CHARS) {
    throw invalidArgument(`page_token of ${token.length} characters is longer than any List gives (${MAX_PAGE_TOKEN_CHARS})`);
  }
  const start = Buffer.from(token, 'base64url').toString('utf8');
  // Decoding skips what is not base64url and mends what is not UTF-8; only a token List made reads back the same.
  if (Buffer.from(start, 'utf8').toString('base64url') !== token || CONTROL.test(start)) {
    throw invalidArgument(`page_token ${shortened(token)} is not one List gave: not the base64url of a record name`);
  }
  if (!start.startsWith(prefix)) throw invalidArgument(`page_token ${shortened(token)} belongs to another prefix than ${shortened(prefix)}`);
  return start;
}
