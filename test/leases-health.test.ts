import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeasesClient } from '../src/generated/containerd/services/leases/v1/Leases.js';
import type { CreateResponse__Output } from '../src/generated/containerd/services/leases/v1/CreateResponse.js';
import type { ListResponse__Output } from '../src/generated/containerd/services/leases/v1/ListResponse.js';
import type { ListResourcesResponse__Output } from '../src/generated/containerd/services/leases/v1/ListResourcesResponse.js';
import { digestOf } from '../src/digest.js';
import { call, failure, listKeys, ns, putObject, randomBlob, startDaemon, until, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';

describe('Leases on S3', () => {
  let d: TestDaemon;
  let leases: LeasesClient;

  beforeAll(async () => {
    d = await startDaemon();
    leases = d.leases();
  });
  afterAll(async () => d.stop());

  it('creates a lease with its labels and lists it, in its namespace only', async () => {
    const created = await call<object, CreateResponse__Output>(leases, 'Create', { id: 'build-1', labels: { 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' } });
    expect(created.lease).toMatchObject({ id: 'build-1', labels: { 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' } });
    const listed = await call<object, ListResponse__Output>(leases, 'List', { filters: ['id==build-1'] });
    expect(listed.leases.map((l) => l.id)).toEqual(['build-1']);
    const elsewhere = await call<object, ListResponse__Output>(leases, 'List', { filters: [] }, ns('other'));
    expect(elsewhere.leases).toEqual([]);
  });

  it('keeps lease records in the bucket under the metadata prefix', async () => {
    await call(leases, 'Create', { id: 'stored-lease' });
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/leases/')).toContain('s3cs/v1/ns/test/leases/stored-lease');
  });

  it('picks an id when none is given', async () => {
    const created = await call<object, CreateResponse__Output>(leases, 'Create', {});
    expect(created.lease!.id).toMatch(/^[A-Za-z0-9]/);
  });

  it('answers AlreadyExists for a lease id in use', async () => {
    await call(leases, 'Create', { id: 'twice' });
    const err = await failure(call(leases, 'Create', { id: 'twice' }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    expect(err.details).toContain('twice');
  });

  it('answers AlreadyExists to one of two Creates of one id sent at once, and keeps the other\'s labels', async () => {
    const creates = await Promise.allSettled(
      ['first', 'second'].map((by) => call<object, CreateResponse__Output>(leases, 'Create', { id: 'raced', labels: { by, 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' } })),
    );
    const refused = creates.flatMap((c) => (c.status === 'rejected' ? [c.reason as ServiceError] : []));
    const created = creates.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
    expect(refused.map((e) => [e.code, e.details])).toEqual([[status.ALREADY_EXISTS, 'lease "raced": already exists']]);
    const listed = await call<object, ListResponse__Output>(leases, 'List', { filters: ['id==raced'] });
    expect(listed.leases.map((l) => l.labels)).toEqual([created[0]!.lease!.labels]);
  });

  it('adds, lists and deletes resources', async () => {
    await call(leases, 'Create', { id: 'with-resources' });
    const digest = `sha256:${'ab'.repeat(32)}`;
    await call(leases, 'AddResource', { id: 'with-resources', resource: { id: digest, type: 'content' } });
    await call(leases, 'AddResource', { id: 'with-resources', resource: { id: 'layer-1', type: 'snapshots/native' } });
    await call(leases, 'AddResource', { id: 'with-resources', resource: { id: 'layer-7', type: 'snapshots/overlayfs' } });
    let res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'with-resources' });
    expect(res.resources).toEqual([
      { id: digest, type: 'content' },
      { id: 'layer-1', type: 'snapshots/native' },
      { id: 'layer-7', type: 'snapshots/overlayfs' },
    ]);
    await call(leases, 'DeleteResource', { id: 'with-resources', resource: { id: 'layer-1', type: 'snapshots/native' } });
    res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'with-resources' });
    expect(res.resources).toEqual([
      { id: digest, type: 'content' },
      { id: 'layer-7', type: 'snapshots/overlayfs' },
    ]);
  });

  it.each([
    ['content', 'sha256:abc', status.INVALID_ARGUMENT, 'invalid content resource id'],
    ['content', 'ingest-1', status.INVALID_ARGUMENT, 'invalid content resource id'],
    ['content/extra', `sha256:${'a'.repeat(64)}`, status.INVALID_ARGUMENT, 'content takes no path'],
    ['snapshots', 'layer-1', status.INVALID_ARGUMENT, 'expected snapshots/<snapshotter>'],
    ['snapshots/overlayfs/extra', 'layer-1', status.INVALID_ARGUMENT, 'expected snapshots/<snapshotter>'],
    ['images', 'docker.io/library/alpine:3', status.UNIMPLEMENTED, 'lease resource type "images" not supported'],
    ['blobs', 'x', status.UNIMPLEMENTED, 'not supported'],
  ])('refuses a %j resource %j as containerd does, and keeps nothing of it', async (type, id, code, message) => {
    await call(leases, 'Create', { id: 'picky' }).catch(() => undefined);
    const err = await failure(call(leases, 'AddResource', { id: 'picky', resource: { id, type } }));
    expect([err.code, err.details]).toEqual([code, expect.stringContaining(message)]);
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'picky' });
    expect(res.resources).toEqual([]);
  });

  it.each([
    ['ingests', 'lease resource type "ingests" not supported: this daemon keeps no ingest for a lease (each is discarded once untouched for --ingest-expiry, leased or not); add the content once committed, as type "content"'],
    ['ingests/extra', 'lease resource type "ingests/extra" not supported: this daemon keeps no ingest for a lease'],
  ])('refuses a %j resource with Unimplemented saying ingests are not kept for a lease (containerd keeps them), and keeps nothing of it', async (type, message) => {
    await call(leases, 'Create', { id: 'no-ingests' }).catch(() => undefined);
    const err = await failure(call(leases, 'AddResource', { id: 'no-ingests', resource: { id: 'ingest-1', type } }));
    expect([err.code, err.details]).toEqual([status.UNIMPLEMENTED, expect.stringContaining(message)]);
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'no-ingests' });
    expect(res.resources).toEqual([]);
  });

  it('records content committed under the containerd-lease header as a resource of that lease', async () => {
    await call(leases, 'Create', { id: 'ingest-lease' });
    const md = ns();
    md.set('containerd-lease', 'ingest-lease');
    const { digest } = await writeBlob(d.content(), 'leased-write', randomBlob(64), { metadata: md });
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'ingest-lease' });
    expect(res.resources).toEqual([{ id: digest, type: 'content' }]);
  });

  it('adds content a Write finds stored at its open to the Write\'s lease, answering AlreadyExists', async () => {
    const data = randomBlob(80);
    const digest = digestOf(data);
    await writeBlob(d.content(), 'stored-first', data);
    await call(leases, 'Create', { id: 'found-at-open' });
    const md = ns();
    md.set('containerd-lease', 'found-at-open');
    const session = new WriteSession(d.content(), md);
    const err = await failure(session.send({ action: 'STAT', ref: 'found-at-open', total: data.length, expected: digest }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'found-at-open' });
    expect(res.resources).toEqual([{ id: digest, type: 'content' }]);
  });

  it('adds content a Write finds stored at its commit to the Write\'s lease, answering AlreadyExists', async () => {
    const data = randomBlob(90);
    const digest = digestOf(data);
    await writeBlob(d.content(), 'stored-before', data);
    await call(leases, 'Create', { id: 'found-at-commit' });
    const md = ns();
    md.set('containerd-lease', 'found-at-commit');
    // no expected digest: the daemon learns it is stored only at the COMMIT
    const err = await failure(writeBlob(d.content(), 'found-at-commit', data, { metadata: md }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'found-at-commit' });
    expect(res.resources).toEqual([{ id: digest, type: 'content' }]);
  });

  it('says the content is stored when a committed Write cannot add it to its lease', async () => {
    await call(leases, 'Create', { id: 'goes-away' });
    const md = ns();
    md.set('containerd-lease', 'goes-away');
    const data = randomBlob(100);
    const session = new WriteSession(d.content(), md);
    await session.send({ action: 'STAT', ref: 'lease-goes-away', total: data.length });
    await session.send({ action: 'WRITE', ref: 'lease-goes-away', offset: 0, data });
    // the lease is deleted after the Write checked it, before its COMMIT
    await call(leases, 'Delete', { id: 'goes-away' });
    const err = await failure(session.send({ action: 'COMMIT', ref: 'lease-goes-away', total: data.length, offset: data.length }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain(`content ${digestOf(data)} is stored`);
    expect(err.details).toContain('goes-away');
    expect(await listKeys(d.bucket!, 'blobs/')).toContain(`blobs/${digestOf(data)}`);
  });

  it('refuses a Write under an unknown lease with NotFound before storing anything', async () => {
    const md = ns();
    md.set('containerd-lease', 'no-such-lease');
    const data = randomBlob(70);
    const session = new WriteSession(d.content(), md);
    const err = await failure(session.send({ action: 'STAT', ref: 'unleased', total: data.length }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('no-such-lease');
    expect(await listKeys(d.bucket!, 'blobs/')).not.toContain(`blobs/${digestOf(data)}`);
  });

  it('keeps every resource that parallel commits add under one lease', async () => {
    // BuildKit commits a build's layers in parallel under one lease.
    await call(leases, 'Create', { id: 'parallel-build' });
    const md = ns();
    md.set('containerd-lease', 'parallel-build');
    const written = await Promise.all(
      Array.from({ length: 24 }, (_, i) => writeBlob(d.content(), `parallel-${i}`, randomBlob(100 + i), { metadata: md })),
    );
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'parallel-build' });
    expect(res.resources.map((r) => r.id).sort()).toEqual(written.map((w) => w.digest).sort());
  });

  it('keeps every resource that parallel AddResource calls add', async () => {
    await call(leases, 'Create', { id: 'parallel-adds' });
    const ids = Array.from({ length: 40 }, (_, i) => `layer-${i}`);
    await Promise.all(ids.map((id) => call(leases, 'AddResource', { id: 'parallel-adds', resource: { id, type: 'snapshots/overlayfs' } })));
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'parallel-adds' });
    expect(res.resources.map((r) => r.id).sort()).toEqual([...ids].sort());
  });

  it('lists a resource added twice once', async () => {
    await call(leases, 'Create', { id: 'twice-added' });
    const resource = { id: 'sha256:' + 'a'.repeat(64), type: 'content' };
    await call(leases, 'AddResource', { id: 'twice-added', resource });
    await call(leases, 'AddResource', { id: 'twice-added', resource });
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'twice-added' });
    expect(res.resources).toEqual([resource]);
  });

  it('still lists the resources of a lease recorded in the older one-document form', async () => {
    const legacy = { id: 'legacy-lease', createdAt: new Date().toISOString(), labels: {}, resources: [{ id: 'old-ingest', type: 'ingests' }] };
    await putObject(d.bucket!, 's3cs/v1/ns/test/leases/legacy-lease', Buffer.from(JSON.stringify(legacy)));
    await call(leases, 'AddResource', { id: 'legacy-lease', resource: { id: 'new-layer', type: 'snapshots/overlayfs' } });
    let res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'legacy-lease' });
    expect(res.resources).toEqual([
      { id: 'old-ingest', type: 'ingests' },
      { id: 'new-layer', type: 'snapshots/overlayfs' },
    ]);
    // an ingest an older version let a lease hold can still go
    await call(leases, 'DeleteResource', { id: 'legacy-lease', resource: { id: 'old-ingest', type: 'ingests' } });
    res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'legacy-lease' });
    expect(res.resources).toEqual([{ id: 'new-layer', type: 'snapshots/overlayfs' }]);
  });

  it('removes a deleted lease\'s resources from the bucket', async () => {
    await call(leases, 'Create', { id: 'with-leftovers' });
    await call(leases, 'AddResource', { id: 'with-leftovers', resource: { id: 'layer-x', type: 'snapshots/overlayfs' } });
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/lease-resources/with-leftovers/')).toHaveLength(1);
    await call(leases, 'Delete', { id: 'with-leftovers' });
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/test/lease-resources/with-leftovers/')).toEqual([]);
  });

  it('does not let a label filter find keys of Object.prototype', async () => {
    await call(leases, 'Create', { id: 'plain-labels', labels: { team: 'a' } });
    const listed = await call<object, ListResponse__Output>(leases, 'List', { filters: ['id==plain-labels,labels.constructor'] });
    expect(listed.leases).toEqual([]);
  });

  it('answers a List whose leases carry more labels than one answer holds with ResourceExhausted naming the bound, and a filtered one', async () => {
    const md = ns('labelled-leases');
    const full = (n: number) => Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`k${String(i).padStart(3, '0')}`, `${n}`.padEnd(4092, 'v')]));
    for (let n = 0; n < 5; n++) await call(leases, 'Create', { id: `full-${n}`, labels: full(n) }, md);
    const err = await failure(call(leases, 'List', { filters: [] }, md));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain('the matching leases come to more than 4194304 bytes encoded (ids and labels), more than one List answers with; narrow the list with a filter');
    const one = await call<object, ListResponse__Output>(leases, 'List', { filters: ['id==full-3'] }, md);
    expect(one.leases.map((l) => l.id)).toEqual(['full-3']);
  });

  it('deletes a lease, and answers NotFound for an unknown one', async () => {
    await call(leases, 'Create', { id: 'short-lived' });
    await call(leases, 'Delete', { id: 'short-lived', sync: true });
    const err = await failure(call(leases, 'Delete', { id: 'short-lived' }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('short-lived');
  });
});

describe('Health', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs' });
  });
  afterAll(async () => d.stop());

  it('reports SERVING for the daemon and for each service', async () => {
    const health = d.health();
    expect(await call(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    expect(await call(health, 'Check', { service: 'containerd.services.leases.v1.Leases' })).toEqual({ status: 'SERVING' });
  });

  it('answers NotFound for a service it does not serve', async () => {
    const err = await failure(call(d.health(), 'Check', { service: 'nope.v1.Nope' }));
    expect(err.code).toBe(status.NOT_FOUND);
  });

  it('answers NotFound for a service name of 100 KiB with a message cut to 1 KiB, saying how much was left out', async () => {
    const err = await failure(call(d.health(), 'Check', { service: 'x'.repeat(100 * 1024) }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details.length).toBeLessThanOrEqual(1024);
    expect(err.details).toMatch(/^unknown service "x+… \(\d+ characters left out\) …x+"$/);
  });

  it('answers NotFound for a service name of emoji that the cut goes through, and goes on serving', async () => {
    const err = await failure(call(d.health(), 'Check', { service: '\u{1F600}'.repeat(1000) }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('characters left out');
    expect(await call(d.health(), 'Check', { service: '' })).toEqual({ status: 'SERVING' });
  });

  it('keeps 1,024 Watch streams apart from --max-streams; one more gets ResourceExhausted naming the limit, and a place once another ended', async () => {
    const health = d.health();
    /** A Watch stream, once its first status arrived. */
    const watch = () =>
      new Promise<ClientReadableStream<unknown>>((resolve, reject) => {
        const stream = health.Watch({ service: '' });
        stream.once('data', () => resolve(stream));
        stream.on('error', reject);
      });
    const open = await Promise.all(Array.from({ length: 1024 }, watch));
    const refused = await failure(watch());
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toContain('Health.Watch: 1024 Watch streams are open, the most this daemon allows (apart from --max-streams)');
    // --max-streams (1024 here) still lets a Write stream open
    const write = new WriteSession(d.content());
    expect((await write.send({ action: 'STAT', ref: 'beside-watchers' })).action).toBe('STAT');
    write.close();
    await write.ended;
    open.shift()!.cancel();
    await until(async () => (await watch().catch(() => undefined)) !== undefined);
    // the daemon's stop ends the rest
  });
});
