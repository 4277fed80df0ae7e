import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { protos } from '../src/grpc/proto.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import { call, collect, failure, listKeys, ns, randomBlob, startDaemon, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';

/**
 * Bad requests a client can send, each with the status and message it must get. After the whole
 * table the daemon still serves and the bucket holds exactly the objects it held before.
 */
interface Case {
  name: string;
  code: status;
  message: string;
  run(t: { client: ContentClient; d: TestDaemon; stored: string }): Promise<unknown>;
}

const hex = 'a'.repeat(64);
const badDigests: [string, string, string][] = [
  ['an empty digest', '', 'digest is empty'],
  ['"sha256:" alone', 'sha256:', 'needs 64'],
  ['a digest of the wrong length', `sha256:${hex.slice(1)}`, 'needs 64'],
  ['upper-case hex', `sha256:${hex.toUpperCase()}`, 'lower-case'],
  ['an unknown algorithm', `md5:${hex.slice(32)}`, 'unsupported algorithm'],
  ['a path in the digest', 'sha256:../../x', 'needs 64'],
  ['a digest without algorithm', hex, 'expected <algorithm>:<hex>'],
];

const statusRef = (ref: string) => ({ client }: { client: ContentClient }) => call(client, 'Status', { ref });
const writeFirst = (req: object, metadata?: Metadata) => ({ client }: { client: ContentClient }) =>
  new WriteSession(client, metadata).send(req);
const withNs = (name: string) => {
  const m = new Metadata();
  if (name !== '') m.set('containerd-namespace', name);
  return m;
};

const cases: Case[] = [
  ...badDigests.map(([what, digest, message]): Case => ({
    name: `Info with ${what}`,
    code: status.INVALID_ARGUMENT,
    message,
    run: ({ client }) => call(client, 'Info', { digest }),
  })),
  ...badDigests.slice(0, 4).map(([what, digest, message]): Case => ({
    name: `Read with ${what}`,
    code: status.INVALID_ARGUMENT,
    message,
    run: ({ client }) => collect(client.Read({ digest }, ns())),
  })),
  { name: 'Delete with a malformed digest', code: status.INVALID_ARGUMENT, message: 'invalid digest', run: ({ client }) => call(client, 'Delete', { digest: 'sha256:zz' }) },
  { name: 'Update with a malformed digest', code: status.INVALID_ARGUMENT, message: 'invalid digest', run: ({ client }) => call(client, 'Update', { info: { digest: 'sha256:zz' }, update_mask: { paths: ['labels'] } }) },
  { name: 'Write with a malformed expected digest', code: status.INVALID_ARGUMENT, message: 'sha256:ZZ', run: writeFirst({ action: 'STAT', ref: 'h-exp', expected: 'sha256:ZZ' }) },
  { name: 'Read past the end', code: status.OUT_OF_RANGE, message: 'read past object length', run: ({ client, stored }) => collect(client.Read({ digest: stored, offset: 1_000_000 }, ns())) },
  { name: 'Read of a missing blob', code: status.NOT_FOUND, message: digestOf('hostile-missing'), run: ({ client }) => collect(client.Read({ digest: digestOf('hostile-missing') }, ns())) },
  { name: 'Delete of a missing blob', code: status.NOT_FOUND, message: 'not found', run: ({ client }) => call(client, 'Delete', { digest: digestOf('hostile-missing') }) },
  { name: 'Update of an unknown field', code: status.INVALID_ARGUMENT, message: 'cannot update "size" field', run: ({ client, stored }) => call(client, 'Update', { info: { digest: stored }, update_mask: { paths: ['size'] } }) },
  { name: 'Update of the created_at field', code: status.INVALID_ARGUMENT, message: 'cannot update "created_at" field', run: ({ client, stored }) => call(client, 'Update', { info: { digest: stored }, update_mask: { paths: ['created_at'] } }) },
  { name: 'Update with a label over 4096 bytes', code: status.INVALID_ARGUMENT, message: 'more than 4096', run: ({ client, stored }) => call(client, 'Update', { info: { digest: stored, labels: { k: 'v'.repeat(4096) } }, update_mask: { paths: ['labels.k'] } }) },
  {
    name: 'Update with too many labels',
    code: status.INVALID_ARGUMENT,
    message: 'at most 256',
    run: ({ client, stored }) => call(client, 'Update', { info: { digest: stored, labels: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v'])) }, update_mask: { paths: ['labels'] } }),
  },
  { name: 'Update without an info', code: status.INVALID_ARGUMENT, message: 'needs an info', run: ({ client }) => call(client, 'Update', { update_mask: { paths: ['labels'] } }) },
  { name: 'List with an unterminated quote', code: status.INVALID_ARGUMENT, message: 'not terminated', run: ({ client }) => collect(client.List({ filters: ['labels."a'] }, ns())) },
  { name: 'List with an unknown operator', code: status.INVALID_ARGUMENT, message: 'unsupported operator', run: ({ client }) => collect(client.List({ filters: ['labels.a=b'] }, ns())) },
  { name: 'List with an invalid regular expression', code: status.INVALID_ARGUMENT, message: 'invalid regular expression', run: ({ client }) => collect(client.List({ filters: ['labels.a~=[z'] }, ns())) },
  { name: 'List with a backreference (RE2 has none)', code: status.INVALID_ARGUMENT, message: 'invalid escape sequence', run: ({ client }) => collect(client.List({ filters: ['labels.a~=(x)\\1'] }, ns())) },
  { name: 'List with a pattern over 1,024 characters', code: status.INVALID_ARGUMENT, message: 'longer than the 1024 allowed', run: ({ client }) => collect(client.List({ filters: [`digest~=${'a'.repeat(2000)}`] }, ns())) },
  { name: 'a lease resource id over 512 bytes encoded', code: status.INVALID_ARGUMENT, message: 'more than 512', run: ({ d }) => call(d.leases(), 'AddResource', { id: 'hostile-lease', resource: { id: '/'.repeat(200), type: 'snapshots/overlayfs' } }) },
  { name: 'List with a missing value', code: status.INVALID_ARGUMENT, message: 'expected a value', run: ({ client }) => collect(client.List({ filters: ['digest=='] }, ns())) },
  { name: 'ListStatuses with a bad filter', code: status.INVALID_ARGUMENT, message: 'invalid filter', run: ({ client }) => call(client, 'ListStatuses', { filters: ['ref~=('] }) },
  // containerd answers NotFound: no ingest has the empty ref
  { name: 'Status with an empty ref', code: status.NOT_FOUND, message: 'could not get status for ref ""', run: statusRef('') },
  { name: 'Status with a ref over 768 bytes', code: status.INVALID_ARGUMENT, message: 'longer than the 768 allowed', run: statusRef('r'.repeat(769)) },
  { name: 'a ref that triples when encoded for its key', code: status.INVALID_ARGUMENT, message: 'once encoded', run: statusRef('/'.repeat(300)) },
  { name: 'Status with a NUL in the ref', code: status.INVALID_ARGUMENT, message: 'control character', run: statusRef('a\0b') },
  { name: 'Status with a newline in the ref', code: status.INVALID_ARGUMENT, message: 'control character', run: statusRef('a\nb') },
  { name: 'Status with "/.." in the ref', code: status.INVALID_ARGUMENT, message: '".." segment', run: statusRef('layer/../../etc') },
  { name: 'Status of an unknown ref', code: status.NOT_FOUND, message: 'hostile-unknown', run: statusRef('hostile-unknown') },
  { name: 'Abort of an unknown ref', code: status.NOT_FOUND, message: 'hostile-unknown', run: ({ client }) => call(client, 'Abort', { ref: 'hostile-unknown' }) },
  { name: 'Abort with an empty ref', code: status.NOT_FOUND, message: 'ingest "": not found', run: ({ client }) => call(client, 'Abort', { ref: '' }) },
  { name: 'Write without a ref', code: status.INVALID_ARGUMENT, message: 'first message must have a reference', run: writeFirst({ action: 'WRITE', data: Buffer.from('x') }) },
  { name: 'Write with a ref over 768 bytes', code: status.INVALID_ARGUMENT, message: 'longer than the 768 allowed', run: writeFirst({ action: 'STAT', ref: 'w'.repeat(2000) }) },
  { name: 'Write with a newline in the ref', code: status.INVALID_ARGUMENT, message: 'control character', run: writeFirst({ action: 'STAT', ref: 'x\ny' }) },
  { name: 'Write with a negative total', code: status.INVALID_ARGUMENT, message: 'negative total', run: writeFirst({ action: 'STAT', ref: 'h-negtotal', total: -1 }) },
  { name: 'Write at a negative offset', code: status.INVALID_ARGUMENT, message: 'negative offset', run: writeFirst({ action: 'WRITE', ref: 'h-negoff', offset: -10, data: Buffer.from('x') }) },
  { name: 'Write past the current offset', code: status.OUT_OF_RANGE, message: 'must occur at current offset 0', run: writeFirst({ action: 'WRITE', ref: 'h-gap', offset: 99, data: Buffer.from('x') }) },
  {
    name: 'Write of data past the declared total',
    code: status.OUT_OF_RANGE,
    message: 'past the declared total 3',
    run: async ({ client }) => {
      const s = new WriteSession(client);
      await s.send({ action: 'STAT', ref: 'h-over', total: 3 });
      return s.send({ action: 'WRITE', ref: 'h-over', offset: 0, data: Buffer.from('four') });
    },
  },
  {
    name: 'Write with an unknown action',
    code: status.INVALID_ARGUMENT,
    message: 'unknown write action',
    run: writeFirst({ action: 7 as never, ref: 'h-action' }),
  },
  {
    name: 'COMMIT with the wrong size',
    code: status.FAILED_PRECONDITION,
    message: 'failed size validation: 5 != 6',
    run: async ({ client }) => {
      const s = new WriteSession(client);
      await s.send({ action: 'WRITE', ref: 'h-size', offset: 0, data: Buffer.from('12345') });
      return s.send({ action: 'COMMIT', ref: 'h-size', offset: 5, total: 6 });
    },
  },
  {
    name: 'COMMIT with the wrong digest',
    code: status.FAILED_PRECONDITION,
    message: 'unexpected commit digest',
    run: async ({ client }) => {
      const s = new WriteSession(client);
      await s.send({ action: 'WRITE', ref: 'h-digest', offset: 0, data: Buffer.from('12345') });
      return s.send({ action: 'COMMIT', ref: 'h-digest', offset: 5, total: 5, expected: digestOf('54321') });
    },
  },
  {
    name: 'COMMIT with a label over 4096 bytes',
    code: status.INVALID_ARGUMENT,
    message: 'more than 4096',
    run: async ({ client }) => {
      const s = new WriteSession(client);
      await s.send({ action: 'WRITE', ref: 'h-label', offset: 0, data: Buffer.from('label') });
      return s.send({ action: 'COMMIT', ref: 'h-label', offset: 5, total: 5, labels: { big: 'x'.repeat(5000) } });
    },
  },
  { name: 'a call without a namespace', code: status.FAILED_PRECONDITION, message: 'namespace is required', run: ({ client, stored }) => call(client, 'Info', { digest: stored }, withNs('')) },
  { name: 'a namespace with a slash', code: status.INVALID_ARGUMENT, message: 'namespace "a/b": invalid', run: ({ client, stored }) => call(client, 'Info', { digest: stored }, withNs('a/b')) },
  { name: 'a namespace over 76 characters', code: status.INVALID_ARGUMENT, message: 'invalid', run: ({ client, stored }) => call(client, 'Info', { digest: stored }, withNs('n'.repeat(80))) },
  { name: 'a Write in an invalid namespace', code: status.INVALID_ARGUMENT, message: 'namespace "..": invalid', run: writeFirst({ action: 'STAT', ref: 'h-ns' }, withNs('..')) },
  { name: 'a lease with an invalid id', code: status.INVALID_ARGUMENT, message: 'lease id "../lease": invalid', run: ({ d }) => call(d.leases(), 'Create', { id: '../lease' }) },
  ...[
    ['Create of a lease id with a space', 'Create', 'my lease', '"my lease"'],
    ['Delete of a lease id of 77 characters', 'Delete', 'l'.repeat(77), `"${'l'.repeat(77)}"`],
    ['AddResource to a lease id beginning with "."', 'AddResource', '.hidden', '".hidden"'],
  ].map(([name, method, id, shown]): Case => ({
    name: `${name!}, told the rule`,
    code: status.INVALID_ARGUMENT,
    message: `lease id ${shown!}: invalid (at most 76 characters, each an ASCII letter, a digit, ".", "_" or "-", the first a letter or digit)`,
    run: ({ d }) => call(d.leases(), method!, { id, resource: { id: 'layer-1', type: 'snapshots/overlayfs' } }),
  })),
  { name: 'Delete of an unknown lease', code: status.NOT_FOUND, message: 'hostile-lease', run: ({ d }) => call(d.leases(), 'Delete', { id: 'hostile-lease' }) },
  { name: 'a cache record name with ".."', code: status.INVALID_ARGUMENT, message: 'path segment', run: ({ d }) => call(d.records(), 'Get', { name: '../../blobs/x' }) },
  { name: 'a cache record Put under 17 names', code: status.INVALID_ARGUMENT, message: 'at most 16 allowed', run: ({ d }) => call(d.records(), 'Put', { names: Array.from({ length: 17 }, (_, i) => `n${i}`), config: Buffer.from('{"layers":[],"records":[]}') }) },
  { name: 'a cache config over 8 MiB', code: status.INVALID_ARGUMENT, message: 'larger than the 8388608 allowed', run: ({ d }) => call(d.records(), 'Put', { names: ['big'], config: Buffer.alloc(8 * 1024 * 1024 + 1, 0x20) }) },
  { name: 'a cache config naming 10,001 layers', code: status.INVALID_ARGUMENT, message: 'at most 10000 allowed', run: ({ d }) => call(d.records(), 'Put', { names: ['wide'], config: Buffer.from(JSON.stringify({ layers: Array.from({ length: 10_001 }, () => ({ blob: `sha256:${hex}` })), records: [] })) }) },
  { name: 'a cache record name whose key is too long for S3', code: status.INVALID_ARGUMENT, message: 'longer than the store allows', run: ({ d }) => call(d.records(), 'Put', { names: ['n'.repeat(1020)], config: Buffer.from('{"layers":[],"records":[]}') }) },
  { name: 'a cache record that is not JSON', code: status.INVALID_ARGUMENT, message: 'not valid JSON', run: ({ d }) => call(d.records(), 'Put', { names: ['h'], config: Buffer.from('{') }) },
  {
    name: 'a WRITE message over the 16 MiB size limit',
    code: status.RESOURCE_EXHAUSTED,
    message: 'larger than max',
    run: async ({ d }) => {
      // a client that allows itself to send more than the daemon accepts
      const Content = protos().content.containerd.services.content.v1.Content as never as new (a: string, c: unknown, o: object) => ContentClient;
      const big = new Content(`unix://${d.socket}`, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 });
      try {
        return await new WriteSession(big).send({ action: 'WRITE', ref: 'h-huge', offset: 0, data: Buffer.alloc(17 << 20) });
      } finally {
        big.close();
      }
    },
  },
];

describe('hostile input', () => {
  let d: TestDaemon;
  let client: ContentClient;
  let stored: string;
  let before: string[];

  beforeAll(async () => {
    d = await startDaemon();
    client = d.content();
    stored = (await writeBlob(client, 'hostile-fixture', randomBlob(1000))).digest;
    before = await listKeys(d.bucket!);
  });
  afterAll(async () => d.stop());

  it('has at least 40 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const err: ServiceError = await failure(c.run({ client, d, stored }));
    expect({ code: status[err.code], details: err.details }).toMatchObject({ code: status[c.code] });
    expect(err.details).toContain(c.message);
  });

  it('survives a client that opens a Write stream and never sends', async () => {
    const silent = new WriteSession(client);
    await new Promise((r) => setTimeout(r, 300));
    silent.cancel();
    await silent.ended;
    expect(await call(d.health(), 'Check', { service: '' })).toEqual({ status: 'SERVING' });
  });

  it('still serves, and the bucket holds exactly what it held before', async () => {
    const info = await call<object, { info: { digest: string } }>(client, 'Info', { digest: stored });
    expect(info.info.digest).toBe(stored);
    expect(await listKeys(d.bucket!)).toEqual(before);
  });
});
