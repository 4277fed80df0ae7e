import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeasesClient } from '../src/generated/containerd/services/leases/v1/Leases.js';
import type { ListResourcesResponse__Output } from '../src/generated/containerd/services/leases/v1/ListResourcesResponse.js';
import { call, listKeys, type TestDaemon } from './support/harness.js';
import { daemonLoggingRequests, type RequestLog } from './support/s3-requests.js';

/**
 * Create, Delete and the resource changes of one lease run one at a time in a daemon: a Delete
 * removes the lease's document first and its resources after, and what is made again under the
 * id meanwhile must not go with them.
 */
describe('Changes of one lease', () => {
  let d: TestDaemon;
  let log: RequestLog;
  let leases: LeasesClient;

  /** Time for calls already sent to reach the daemon and run as far as they may (a pause, not a timing assertion). */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 1_000));

  beforeAll(async () => {
    ({ d, log } = await daemonLoggingRequests());
    leases = d.leases();
  });
  afterAll(async () => {
    log.intercept = undefined;
    await d?.stop();
  });

  it('a lease made again under its id, and given a resource, while a Delete of the old one removes its resources keeps that resource', async () => {
    await call(leases, 'Create', { id: 'reused' });
    const old = Array.from({ length: 20 }, (_, i) => ({ id: `old-${i}`, type: 'snapshots/overlayfs' }));
    await Promise.all(old.map((resource) => call(leases, 'AddResource', { id: 'reused', resource })));
    // the Delete's listing of the old lease's resources is held back, once its document is gone
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    let listings = 0;
    log.intercept = async (op, key) => {
      if (op === 'ListObjectsV2' && key.endsWith('lease-resources/reused/') && listings++ === 0) {
        reached();
        await gate;
      }
    };
    const kept = { id: 'made-after', type: 'snapshots/overlayfs' };
    try {
      const deleting = call(leases, 'Delete', { id: 'reused' });
      await held;
      const remade = (async () => {
        await call(leases, 'Create', { id: 'reused' });
        await call(leases, 'AddResource', { id: 'reused', resource: kept });
      })();
      // either made meanwhile, or waiting for the Delete to end
      await Promise.race([remade.catch(() => undefined), settle()]);
      release();
      await deleting;
      await remade;
    } finally {
      release();
      log.intercept = undefined;
    }
    const res = await call<object, ListResourcesResponse__Output>(leases, 'ListResources', { id: 'reused' });
    expect(res.resources).toEqual([kept]);
  });

  it('a Delete removes its lease\'s resources several at once, not one after another', async () => {
    await call(leases, 'Create', { id: 'many' });
    const resources = Array.from({ length: 24 }, (_, i) => ({ id: `s-${i}`, type: 'snapshots/overlayfs' }));
    await Promise.all(resources.map((resource) => call(leases, 'AddResource', { id: 'many', resource })));
    let inFlight = 0;
    let most = 0;
    log.intercept = async (op, key) => {
      if (op !== 'DeleteObject' || !key.includes('lease-resources/many/')) return;
      inFlight++;
      most = Math.max(most, inFlight);
      // each removal held a while, so removals sent one after another never overlap
      await new Promise((resolve) => setTimeout(resolve, 100));
      inFlight--;
    };
    try {
      await call(leases, 'Delete', { id: 'many' });
    } finally {
      log.intercept = undefined;
    }
    expect(most).toBeGreaterThan(1);
    expect((await listKeys(d.bucket!)).filter((key) => key.includes('lease-resources/many/'))).toEqual([]);
  });

  it('a Delete whose removal of one resource fails answers only once none of its other removals is still on its way', async () => {
    await call(leases, 'Create', { id: 'failing' });
    const resources = Array.from({ length: 24 }, (_, i) => ({ id: `f-${i}`, type: 'snapshots/overlayfs' }));
    await Promise.all(resources.map((resource) => call(leases, 'AddResource', { id: 'failing', resource })));
    let inFlight = 0;
    let first = true;
    log.intercept = async (op, key) => {
      if (op !== 'DeleteObject' || !key.includes('lease-resources/failing/')) return;
      if (first) {
        first = false;
        throw new Error('refused by the test');
      }
      inFlight++;
      try {
        // held a while, so removals sent beside the failed one are still on their way when it fails
        await new Promise((resolve) => setTimeout(resolve, 300));
      } finally {
        inFlight--;
      }
    };
    let onTheirWay = -1;
    try {
      await expect(
        call(leases, 'Delete', { id: 'failing' }).finally(() => {
          onTheirWay = inFlight;
        }),
      ).rejects.toThrow();
    } finally {
      log.intercept = undefined;
    }
    // a removal landing after the answer could take the resource of a lease made again under the id
    expect(onTheirWay).toBe(0);
  });
});
