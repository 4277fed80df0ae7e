import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { isStoreError } from '../../src/errors.js';
import { protos } from '../../src/grpc/proto.js';
import type { Labels } from '../../src/labels.js';
import { listedLeaseBytes, LeaseStore } from '../../src/leases/store.js';
import { listedNamespaceBytes, NamespaceStore } from '../../src/namespaces/store.js';
import { Instant } from '../../src/clock.js';

/** 256 labels of a key of 2 to 4 characters and a one-character value: framing is most of what they encode to. */
const tiny: Labels = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`k${i}`, 'v']));
const shapes: [string, Labels][] = [
  ['no labels', {}],
  ['256 tiny labels', tiny],
  ['labels of 4 KiB', { [`k${'x'.repeat(200)}`]: 'v'.repeat(3800), short: 'v'.repeat(130) }],
  ['labels of three-byte characters', { '\u4e2d\u6587': '\u4e2d'.repeat(1000) }],
];

/** What grpc-js sends: the message as the served proto encodes it. */
const encoded = (service: { service: Record<string, { responseSerialize(value: unknown): Buffer }> }, answer: unknown) =>
  service.service.List!.responseSerialize(answer).length;

describe('the size of a List answer', () => {
  it.each(shapes)('is reckoned exactly for namespaces with %s', (_what, labels) => {
    const namespaces = [
      { name: 'default', labels },
      { name: 'n'.repeat(76), labels },
    ];
    const reckoned = namespaces.reduce((sum, ns) => sum + listedNamespaceBytes(ns), 0);
    expect(reckoned).toBe(encoded(protos().namespaces.containerd.services.namespaces.v1.Namespaces as never, { namespaces }));
  });

  it.each(shapes)('is reckoned for leases with %s at no less than they encode to, and at most 12 bytes a lease more', (_what, labels) => {
    const createdAt = Instant.fromDate(new Date());
    const leases = [
      { id: 'build-1', createdAt, labels },
      { id: 'l'.repeat(76), createdAt, labels },
    ];
    const reckoned = leases.reduce((sum, lease) => sum + listedLeaseBytes(lease), 0);
    const actual = encoded(protos().leases.containerd.services.leases.v1.Leases as never, {
      leases: leases.map((l) => ({ id: l.id, created_at: l.createdAt.toTimestamp(), labels: l.labels })),
    });
    expect(reckoned).toBeGreaterThanOrEqual(actual);
    expect(reckoned - actual).toBeLessThanOrEqual(12 * leases.length);
  });
});

describe('a List whose answer would pass its bound only by its labels\' framing', () => {
  let root: string;
  let blobs: FsBlobStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'answer-size-'));
    blobs = new FsBlobStore(root);
    await blobs.init();
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  // three of them: 3,510 bytes of keys and values, some 8,100 encoded
  const names = ['a', 'b', 'c'];
  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'answered',
      (err: unknown) => (isStoreError(err, 'resource-exhausted') ? err.message : err),
    );

  it('of namespaces is ResourceExhausted naming the bound', async () => {
    const store = new NamespaceStore(blobs, { namespacesWithLiveIngests: () => new Set<string>(), forgetNamespace: () => undefined }, undefined);
    for (const name of names) await store.create(name, tiny);
    expect(await refusal(store.list('', { maxBytes: 5_000 }))).toBe(
      'the namespaces listed come to more than 5000 bytes encoded (names and labels), the most one List answers with; narrow it with a filter',
    );
    expect((await store.list('name==b', { maxBytes: 5_000 })).map((n) => n.name)).toEqual(['b']);
  });

  it('of leases is ResourceExhausted naming the bound', async () => {
    const store = new LeaseStore(blobs, { maxListedBytes: 5_000 });
    for (const id of names) await store.create('builds', id, tiny);
    expect(await refusal(store.list('builds', []))).toBe(
      'namespace builds: the matching leases come to more than 5000 bytes encoded (ids and labels), more than one List answers with; narrow the list with a filter',
    );
    expect((await store.list('builds', ['id==b'])).map((l) => l.id)).toEqual(['b']);
  });
});
