import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/blobstore/types.js';
import { isStoreError } from '../../src/errors.js';
import { pageTokenStart, validateListPrefix } from '../../src/records/names.js';
import { RecordStore } from '../../src/records/store.js';
import type { TouchRefresher } from '../../src/records/touch.js';

/** A page token as List hands it out: the base64url of where the page ended. */
const token = (after: string) => Buffer.from(after).toString('base64url');

function refusal(run: () => unknown): Error {
  try {
    run();
  } catch (err) {
    expect(isStoreError(err, 'invalid-argument')).toBe(true);
    return err as Error;
  }
  throw new Error('it was accepted');
}

describe('Records.List prefix', () => {
  it.each([
    ['empty, for every record', ''],
    ['a partial name, which path rules of names would refuse', 'team/.'],
    ['as long as a name may be', 'n'.repeat(1024)],
  ])('takes one %s', (_what, prefix) => {
    expect(validateListPrefix(prefix)).toBe(prefix);
  });

  it('refuses one longer than a record name may be, naming the prefix', () => {
    expect(refusal(() => validateListPrefix('é'.repeat(513))).message).toBe('prefix of 1026 bytes is longer than a record name may be (1024)');
  });

  it('refuses a control character, naming the prefix', () => {
    expect(refusal(() => validateListPrefix('team/\n')).message).toBe('prefix "team/\\n" contains a control character');
  });
});

describe('Records.List page_token', () => {
  it('takes one List gave, for its prefix', () => {
    expect(pageTokenStart(token('team/b'), 'team/')).toBe('team/b');
  });

  it('refuses one longer than any List gives, naming page_token', () => {
    expect(refusal(() => pageTokenStart('A'.repeat(2000), '')).message).toContain('page_token of 2000 characters is longer than any List gives (1366)');
  });

  it.each([
    ['characters outside base64url', '!!!!'],
    ['padding', `${token('team/b')}==`],
    ['bytes that are not UTF-8', Buffer.from([0x74, 0xff, 0xfe]).toString('base64url')],
    ['a control character', token('team/\u0000')],
  ])('refuses one with %s, naming page_token', (_what, given) => {
    expect(refusal(() => pageTokenStart(given, '')).message).toContain('page_token');
  });

  it('refuses one of another prefix, naming page_token', () => {
    expect(refusal(() => pageTokenStart(token('other/b'), 'team/')).message).toContain('page_token "b3RoZXIvYg" belongs to another prefix than "team/"');
  });
});

describe('RecordStore.list', () => {
  it('refuses a bad prefix before the store is asked', async () => {
    let listed = 0;
    const blobs = { listRecords: async () => (listed++, { entries: [] }) } as unknown as BlobStore;
    const store = new RecordStore(blobs, {} as TouchRefresher, pino({ level: 'silent' }));
    await expect(store.list('\u0007', 10, '')).rejects.toThrow('prefix "\\u0007" contains a control character');
    expect(listed).toBe(0);
  });
});
