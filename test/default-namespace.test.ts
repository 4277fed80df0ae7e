import { Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { call, collect, failure, listKeys, ns, randomBlob, startDaemon, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';

const DEFAULT_NS = 'containerd';
/** No namespace header at all: how containerd calls its content backend. */
const none = () => new Metadata();

const listed = async (client: ContentClient, metadata: Metadata) =>
  (await collect<ListContentResponse__Output>(client.List({ filters: [] }, metadata))).flatMap((r) => r.info.map((i) => i.digest));

describe('--default-namespace', () => {
  let d: TestDaemon;
  let client: ContentClient;

  beforeAll(async () => {
    d = await startDaemon({ flags: { defaultNamespace: DEFAULT_NS } });
    client = d.content();
  });
  afterAll(async () => d.stop());

  it('serves a call that carries no namespace as the default namespace', async () => {
    const { digest } = await writeBlob(client, 'plain-1', randomBlob(100), { metadata: none() });
    expect(await listed(client, ns(DEFAULT_NS))).toContain(digest);
  });

  it('serves a call that names a namespace in that one, not in the default', async () => {
    const { digest } = await writeBlob(client, 'named-1', randomBlob(101), { metadata: ns('team') });
    expect(await listed(client, ns('team'))).toContain(digest);
    expect(await listed(client, none())).not.toContain(digest);
  });

  it('answers NotFound on Info, Read and Update of a stored blob it does not hold, which other namespaces see', async () => {
    const { digest } = await writeBlob(client, 'unheld-1', randomBlob(102), { metadata: ns('team') });
    expect((await failure(call(client, 'Info', { digest }, none()))).code).toBe(status.NOT_FOUND);
    expect((await failure(collect<ReadContentResponse__Output>(client.Read({ digest }, none())))).code).toBe(status.NOT_FOUND);
    const update = { info: { digest, labels: { a: 'b' } }, update_mask: { paths: ['labels.a'] } };
    expect((await failure(call(client, 'Update', update, none()))).code).toBe(status.NOT_FOUND);
    await expect(call(client, 'Info', { digest }, ns('elsewhere'))).resolves.toMatchObject({ info: { digest } });
  });

  it('holds a stored blob once a Write of it, opened without a digest as containerd does, answers AlreadyExists at COMMIT', async () => {
    const data = randomBlob(103);
    const { digest } = await writeBlob(client, 'shared-1', data, { metadata: ns('team') });
    const session = new WriteSession(client, none());
    await session.send({ action: 'STAT', ref: 'default-1-shared-1', total: data.length });
    await session.send({ action: 'WRITE', ref: 'default-1-shared-1', offset: 0, data });
    const err = await failure(session.send({ action: 'COMMIT', total: data.length, offset: data.length, expected: digest }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    await session.ended;
    await expect(call(client, 'Info', { digest }, none())).resolves.toMatchObject({ info: { digest, size: data.length } });
    expect(await listed(client, none())).toContain(digest);
  });

  it('Delete drops the hold and leaves no record of the namespace about the blob, while the bytes stay', async () => {
    const { digest } = await writeBlob(client, 'del-1', randomBlob(104), { metadata: none() });
    await call(client, 'Delete', { digest }, none());
    expect((await failure(call(client, 'Info', { digest }, none()))).code).toBe(status.NOT_FOUND);
    expect(await listKeys(d.bucket!, `s3cs/v1/ns/${DEFAULT_NS}/content/${digest}`)).toEqual([]);
    expect(await listKeys(d.bucket!, `s3cs/v1/ns/${DEFAULT_NS}/deleted/${digest}`)).toEqual([]);
    expect(await listKeys(d.bucket!, `blobs/${digest}`)).toEqual([`blobs/${digest}`]);
  });

  it('Delete finds a hold that another daemon sharing the bucket wrote after this one looked', async () => {
    const data = randomBlob(105);
    const digest = digestOf(data);
    expect((await failure(call(client, 'Info', { digest }, none()))).code).toBe(status.NOT_FOUND);
    const second = await startDaemon({ bucket: d.bucket!, flags: { defaultNamespace: DEFAULT_NS } });
    try {
      await writeBlob(second.content(), 'other-daemon-1', data, { metadata: none() });
    } finally {
      await second.stop();
    }
    // containerd's collector lists, then deletes what it listed, and stops at the first error
    expect(await listed(client, none())).toContain(digest);
    await call(client, 'Delete', { digest }, none());
    expect(await listed(client, none())).not.toContain(digest);
  });
});

describe('without --default-namespace', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => d.stop());

  it('refuses a call that carries no namespace with FailedPrecondition naming the header and the flag', async () => {
    const err = await failure(call(d.content(), 'Info', { digest: digestOf('x') }, none()));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('containerd-namespace');
    expect(err.details).toContain('--default-namespace');
  });
});
