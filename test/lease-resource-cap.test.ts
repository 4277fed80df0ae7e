import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/blobstore/types.js';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { isStoreError } from '../src/errors.js';
import { scanRoots } from '../src/gc/roots.js';
import { collectorSourcesFor } from '../src/gc/sources.js';
import { LeaseStore } from '../src/leases/store.js';
import { openBlobStore } from '../src/server.js';
import { listKeys, newBucket, quietLogger, s3, useS3Credentials } from './support/harness.js';

/** The cap on one lease's resources, made small: the real one (10,000) would take as many PUTs. */
describe('the cap on a lease\'s resources', () => {
  let bucket: string;
  let store: BlobStore;

  beforeAll(async () => {
    useS3Credentials();
    bucket = await newBucket();
    store = await openBlobStore(resolveConfig({ bucket, endpointUrl: s3().endpoint, region: s3().region }, {}), quietLogger());
  });
  afterAll(async () => store?.close());

  it('lets parallel adds fill a lease up to the cap and no further', async () => {
    const leases = new LeaseStore(store, { maxResources: 5 });
    await leases.create('capped', 'parallel', {});
    const adds = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => leases.addResource('capped', 'parallel', { id: `layer-${i}`, type: 'snapshots/overlayfs' })),
    );

    expect(adds.filter((a) => a.status === 'fulfilled')).toHaveLength(5);
    for (const a of adds) {
      if (a.status === 'rejected') {
        expect(isStoreError(a.reason, 'resource-exhausted')).toBe(true);
        expect((a.reason as Error).message).toContain('holds 5 resources, the most one lease may hold');
      }
    }
    expect(await leases.listResources('capped', 'parallel')).toHaveLength(5);
    expect(await listKeys(bucket, 's3cs/v1/ns/capped/lease-resources/parallel/')).toHaveLength(5);
  });

  it('takes again, at the cap, a resource the lease holds already, as containerd\'s add is idempotent', async () => {
    const leases = new LeaseStore(store, { maxResources: 2 });
    await leases.create('capped', 'full', {});
    await leases.addResource('capped', 'full', { id: 'a', type: 'snapshots/overlayfs' });
    await leases.addResource('capped', 'full', { id: 'b', type: 'snapshots/overlayfs' });
    await leases.addResource('capped', 'full', { id: 'a', type: 'snapshots/overlayfs' });
    await expect(leases.addResource('capped', 'full', { id: 'c', type: 'snapshots/overlayfs' })).rejects.toThrow('the most one lease may hold');
    expect(await leases.listResources('capped', 'full')).toEqual([
      { id: 'a', type: 'snapshots/overlayfs' },
      { id: 'b', type: 'snapshots/overlayfs' },
    ]);
  });

  it('lists every resource of a lease that holds more than the cap, as daemons adding at once may leave it, and the collector holds them all', async () => {
    // one daemon added eight; this one allows five
    const generous = new LeaseStore(store, { maxResources: 100 });
    const strict = new LeaseStore(store, { maxResources: 5 });
    await generous.create('crowded', 'over', {});
    const digests = Array.from({ length: 8 }, (_, i) => digestOf(Buffer.from(`resource ${i}`))).sort();
    for (const id of digests) await generous.addResource('crowded', 'over', { id, type: 'content' });

    expect((await strict.listResources('crowded', 'over')).map((r) => r.id)).toEqual(digests);
    const roots = await scanRoots(collectorSourcesFor(store, strict));
    for (const digest of digests) expect(roots.digests.has(digest), digest).toBe(true);
  });
});
