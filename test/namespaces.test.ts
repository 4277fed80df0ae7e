import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/blobstore/types.js';
import { resolveConfig } from '../src/config.js';
import { scanRoots } from '../src/gc/roots.js';
import { collectorSourcesFor } from '../src/gc/sources.js';
import type { NamespacesClient } from '../src/generated/containerd/services/namespaces/v1/Namespaces.js';
import type { CreateNamespaceResponse__Output } from '../src/generated/containerd/services/namespaces/v1/CreateNamespaceResponse.js';
import type { GetNamespaceResponse__Output } from '../src/generated/containerd/services/namespaces/v1/GetNamespaceResponse.js';
import type { ListNamespacesResponse__Output } from '../src/generated/containerd/services/namespaces/v1/ListNamespacesResponse.js';
import type { UpdateNamespaceResponse__Output } from '../src/generated/containerd/services/namespaces/v1/UpdateNamespaceResponse.js';
import { LeaseStore } from '../src/leases/store.js';
import { openBlobStore } from '../src/server.js';
import {
  call,
  failure,
  listKeys,
  ns,
  putObject,
  randomBlob,
  s3,
  startDaemon,
  useS3Credentials,
  WriteSession,
  writeBlob,
  type TestDaemon,
} from './support/harness.js';

/** containerd's Namespaces service: explicit and implicit namespaces, labels, and Delete of empty ones only. */
describe('Namespaces on S3', () => {
  let d: TestDaemon;
  let client: NamespacesClient;

  const get = async (name: string) => (await call<object, GetNamespaceResponse__Output>(client, 'Get', { name })).namespace!;
  const names = async (filter = '') =>
    (await call<object, ListNamespacesResponse__Output>(client, 'List', { filter })).namespaces.map((n) => n.name);
  const update = (name: string, labels: Record<string, string>, paths?: string[]) =>
    call<object, UpdateNamespaceResponse__Output>(client, 'Update', { namespace: { name, labels }, ...(paths ? { update_mask: { paths } } : {}) });

  beforeAll(async () => {
    d = await startDaemon();
    client = d.namespaces();
  });
  afterAll(async () => d?.stop());

  it('is served, and reported SERVING by Health under its name', async () => {
    expect(await call(d.health(), 'Check', { service: 'containerd.services.namespaces.v1.Namespaces' })).toEqual({ status: 'SERVING' });
  });

  it('creates a namespace with its labels, which Get and List then show', async () => {
    const created = await call<object, CreateNamespaceResponse__Output>(client, 'Create', { namespace: { name: 'created', labels: { team: 'build' } } });
    expect(created.namespace).toEqual({ name: 'created', labels: { team: 'build' } });
    expect(await get('created')).toEqual({ name: 'created', labels: { team: 'build' } });
    const listed = (await call<object, ListNamespacesResponse__Output>(client, 'List', {})).namespaces;
    expect(listed.find((n) => n.name === 'created')).toEqual({ name: 'created', labels: { team: 'build' } });
  });

  it('lists a namespace once anything is written in it, without a Create', async () => {
    await writeBlob(d.content(), 'implicit', randomBlob(100), { metadata: ns('written-in') });
    await call(d.leases(), 'Create', { id: 'only-a-lease' }, ns('leased-in'));
    expect(await names()).toEqual(expect.arrayContaining(['written-in', 'leased-in']));
    expect(await get('written-in')).toEqual({ name: 'written-in', labels: {} });
  });

  it('lists namespaces in name order, the bucket namespace among them', async () => {
    await call(client, 'Create', { namespace: { name: 'order-z', labels: { found: 'first' } } });
    await call(d.leases(), 'Create', { id: 'marks-it' }, ns('order-a'));
    const listed = await names();
    expect(listed).toEqual(expect.arrayContaining(['order-a', 'order-z']));
    expect(listed).toEqual([...listed].sort());
    expect(listed).toContain('bucket');
  });

  it('answers AlreadyExists for a Create of a namespace that was created, or written in', async () => {
    await call(client, 'Create', { namespace: { name: 'twice' } });
    for (const name of ['twice', 'written-in', 'bucket']) {
      const err = await failure(call(client, 'Create', { namespace: { name, labels: { x: 'y' } } }));
      expect(err.code).toBe(status.ALREADY_EXISTS);
      expect(err.details).toBe(`namespace "${name}": already exists`);
    }
    expect(await get('twice')).toEqual({ name: 'twice', labels: {} });
  });

  it('answers NotFound for a Get, Update or Delete of a namespace that does not exist', async () => {
    for (const attempt of [() => get('nowhere'), () => update('nowhere', { a: 'b' }, ['labels.a']), () => call(client, 'Delete', { name: 'nowhere' })]) {
      const err = await failure(attempt());
      expect(err.code).toBe(status.NOT_FOUND);
      expect(err.details).toBe('namespace "nowhere": not found');
    }
    expect(await names()).not.toContain('nowhere');
  });

  it('answers InvalidArgument naming a bad namespace name, and creates nothing', async () => {
    for (const attempt of [
      () => call(client, 'Create', { namespace: { name: 'a/b' } }),
      () => call(client, 'Create', { namespace: { name: '' } }),
      () => get('-leading-dash'),
      () => call(client, 'Delete', { name: 'x'.repeat(77) }),
    ]) {
      const err = await failure(attempt());
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^namespace ".*": invalid/);
    }
    expect(await listKeys(d.bucket!, 's3cs/v1/namespaces/a')).toEqual([]);
  });

  it('sets and removes single labels with labels.<key> paths, leaving the others', async () => {
    await call(client, 'Create', { namespace: { name: 'labelled', labels: { keep: '1', drop: '2' } } });
    const updated = await update('labelled', { added: '3', drop: '' }, ['labels.added', 'labels.drop']);
    expect(updated.namespace).toEqual({ name: 'labelled', labels: { keep: '1', added: '3' } });
    expect(await get('labelled')).toEqual({ name: 'labelled', labels: { keep: '1', added: '3' } });
  });

  it('replaces all labels for the path "labels", and for an update without paths', async () => {
    await call(client, 'Create', { namespace: { name: 'replaced', labels: { old: '1' } } });
    await update('replaced', { first: 'a' }, ['labels']);
    expect((await get('replaced')).labels).toEqual({ first: 'a' });
    await update('replaced', { second: 'b' });
    expect((await get('replaced')).labels).toEqual({ second: 'b' });
  });

  it('answers InvalidArgument for a field path other than labels, changing nothing', async () => {
    await call(client, 'Create', { namespace: { name: 'fixed', labels: { a: '1' } } });
    const err = await failure(update('fixed', { a: '2' }, ['labels.a', 'name']));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('cannot update "name" field of namespace "fixed"');
    expect((await get('fixed')).labels).toEqual({ a: '1' });
  });

  it('refuses a label whose key and value pass 4096 bytes, in Create and Update, changing nothing', async () => {
    const big = 'v'.repeat(4096);
    const created = await failure(call(client, 'Create', { namespace: { name: 'too-big', labels: { k: big } } }));
    expect(created.code).toBe(status.INVALID_ARGUMENT);
    expect(created.details).toContain('more than 4096');
    expect(await names()).not.toContain('too-big');
    await call(client, 'Create', { namespace: { name: 'limited', labels: { k: 'small' } } });
    const updated = await failure(update('limited', { k: big }, ['labels.k']));
    expect(updated.code).toBe(status.INVALID_ARGUMENT);
    expect((await get('limited')).labels).toEqual({ k: 'small' });
  });

  it('keeps a namespace\'s labels when content, ingests and leases are written in it', async () => {
    await call(client, 'Create', { namespace: { name: 'busy', labels: { owner: 'ci' } } });
    await writeBlob(d.content(), 'busy-1', randomBlob(200), { metadata: ns('busy') });
    await call(d.leases(), 'Create', { id: 'busy-lease' }, ns('busy'));
    // a daemon that never saw the namespace marks it on its first write there
    const second = await startDaemon({ bucket: d.bucket! });
    try {
      await writeBlob(second.content(), 'busy-2', randomBlob(300), { metadata: ns('busy') });
    } finally {
      await second.stop();
    }
    expect(await get('busy')).toEqual({ name: 'busy', labels: { owner: 'ci' } });
  });

  it('filters List by name and labels with containerd\'s filter syntax', async () => {
    await call(client, 'Create', { namespace: { name: 'filtered-a', labels: { tier: 'gold' } } });
    await call(client, 'Create', { namespace: { name: 'filtered-b', labels: { tier: 'lead' } } });
    expect(await names('labels.tier==gold')).toEqual(['filtered-a']);
    expect(await names('name~="^filtered-"')).toEqual(['filtered-a', 'filtered-b']);
  });

  it('refuses to delete a namespace holding content, naming what remains as containerd does, and keeps it', async () => {
    const { digest } = await writeBlob(d.content(), 'held', randomBlob(100), { metadata: ns('holding') });
    const err = await failure(call(client, 'Delete', { name: 'holding' }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toBe('namespace "holding" must be empty, but it still has content');
    expect(await call(d.content(), 'Info', { digest }, ns('holding'))).toMatchObject({ info: { digest } });
    expect(await names()).toContain('holding');
  });

  it('names every kind that remains: content, ingests and leases', async () => {
    await writeBlob(d.content(), 'everything-1', randomBlob(100), { metadata: ns('everything') });
    await call(d.leases(), 'Create', { id: 'everything-lease' }, ns('everything'));
    // an ingest another daemon recorded in the bucket
    await putObject(d.bucket!, 's3cs/v1/ns/everything/ingests/elsewhere', Buffer.from(JSON.stringify({ ref: 'elsewhere', total: 0, expected: '', offset: 0, startedAt: new Date().toISOString(), updatedAt: new Date().toISOString() })));
    const err = await failure(call(client, 'Delete', { name: 'everything' }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toBe('namespace "everything" must be empty, but it still has content, ingests, leases');
  });

  it('refuses to delete a namespace with a lease, or an ingest this daemon holds', async () => {
    await call(d.leases(), 'Create', { id: 'keeps-it' }, ns('with-lease'));
    const leased = await failure(call(client, 'Delete', { name: 'with-lease' }));
    expect(leased.details).toBe('namespace "with-lease" must be empty, but it still has leases');
    const session = new WriteSession(d.content(), ns('with-ingest'));
    await session.send({ action: 'STAT', ref: 'open-ingest', total: 10 });
    try {
      const ingesting = await failure(call(client, 'Delete', { name: 'with-ingest' }));
      expect(ingesting.code).toBe(status.FAILED_PRECONDITION);
      expect(ingesting.details).toBe('namespace "with-ingest" must be empty, but it still has ingests');
    } finally {
      session.cancel();
      await session.ended;
    }
  });

  it('deletes an empty namespace with its records, after which it is gone until written in again', async () => {
    await call(client, 'Create', { namespace: { name: 'emptied', labels: { a: 'b' } } });
    const { digest } = await writeBlob(d.content(), 'emptied-1', randomBlob(100), { metadata: ns('emptied') });
    await call(d.content(), 'Delete', { digest }, ns('emptied'));
    await call(d.leases(), 'Create', { id: 'short' }, ns('emptied'));
    await call(d.leases(), 'Delete', { id: 'short' }, ns('emptied'));
    // a resource a lease Delete cut short left behind
    await putObject(d.bucket!, `s3cs/v1/ns/emptied/lease-resources/gone/content/${digest}`, Buffer.from('{}'));
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/emptied/')).not.toEqual([]);

    await call(client, 'Delete', { name: 'emptied' });
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/emptied/')).toEqual([]);
    expect(await listKeys(d.bucket!, 's3cs/v1/namespaces/emptied')).toEqual([]);
    expect(await listKeys(d.bucket!, 's3cs/v1/namespace-labels/emptied')).toEqual([]);
    expect((await failure(get('emptied'))).code).toBe(status.NOT_FOUND);
    expect(await names()).not.toContain('emptied');

    await writeBlob(d.content(), 'emptied-2', randomBlob(100), { metadata: ns('emptied') });
    expect(await get('emptied')).toEqual({ name: 'emptied', labels: {} });
  });

  it('starts a namespace deleted and written in again afresh: a blob it deleted before reads there as any stored blob', async () => {
    const data = randomBlob(90);
    const { digest } = await writeBlob(d.content(), 'afresh-1', data, { metadata: ns('afresh') });
    await call(d.content(), 'Delete', { digest }, ns('afresh'));
    expect((await failure(call(d.content(), 'Info', { digest }, ns('afresh')))).code).toBe(status.NOT_FOUND);
    await call(client, 'Delete', { name: 'afresh' });
    await call(client, 'Create', { namespace: { name: 'afresh' } });
    expect(await call(d.content(), 'Info', { digest }, ns('afresh'))).toMatchObject({ info: { digest, size: 90 } });
  });

  it('never deletes the bucket namespace, whose labels can be set without changing what it lists', async () => {
    const err = await failure(call(client, 'Delete', { name: 'bucket' }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('--bucket-namespace');
    const { digest } = await writeBlob(d.content(), 'for-bucket-view', randomBlob(150), { metadata: ns('elsewhere') });
    await update('bucket', { purpose: 'everything' }, ['labels.purpose']);
    expect(await get('bucket')).toEqual({ name: 'bucket', labels: { purpose: 'everything' } });
    expect(await call(d.content(), 'Info', { digest }, ns('bucket'))).toMatchObject({ info: { digest } });
    expect(await names()).toContain('bucket');
  });
});

describe('Namespaces deleted through another daemon', () => {
  let a: TestDaemon;
  let b: TestDaemon;
  let store: BlobStore;

  beforeAll(async () => {
    a = await startDaemon();
    b = await startDaemon({ bucket: a.bucket! });
    useS3Credentials();
    store = await openBlobStore(resolveConfig({ bucket: a.bucket!, endpointUrl: s3().endpoint, region: s3().region }, {}), pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await store?.close();
    await a?.stop();
    await b?.stop();
  });

  it('finds what a daemon that knew the namespace before writes there afterwards: listed, and held for the collector', async () => {
    const first = await writeBlob(a.content(), 'before', randomBlob(100), { metadata: ns('reused') });
    await call(a.content(), 'Delete', { digest: first.digest }, ns('reused'));
    await call(b.namespaces(), 'Delete', { name: 'reused' });
    expect(await listKeys(a.bucket!, 's3cs/v1/namespaces/reused')).toEqual([]);

    const later = await writeBlob(a.content(), 'after', randomBlob(120), { metadata: ns('reused') });
    const listed = await call<object, ListNamespacesResponse__Output>(b.namespaces(), 'List', {});
    expect(listed.namespaces.map((n) => n.name)).toContain('reused');
    const roots = await scanRoots(collectorSourcesFor(store, new LeaseStore(store)));
    expect(roots.digests.has(later.digest)).toBe(true);
  });
});

describe('Namespaces in a local directory', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs' });
  });
  afterAll(async () => d?.stop());

  it('lists namespaces written in, and no longer one deleted, whose emptied directories stay behind', async () => {
    const client = d.namespaces();
    const { digest } = await writeBlob(d.content(), 'local', randomBlob(64), { metadata: ns('local-ns') });
    const list = async () => (await call<object, ListNamespacesResponse__Output>(client, 'List', {})).namespaces.map((n) => n.name);
    expect(await list()).toContain('local-ns');
    await call(d.content(), 'Delete', { digest }, ns('local-ns'));
    await call(client, 'Delete', { name: 'local-ns' });
    expect(await list()).not.toContain('local-ns');
    expect((await failure(call(client, 'Get', { name: 'local-ns' }))).code).toBe(status.NOT_FOUND);
  });
});
