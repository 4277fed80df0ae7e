import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, ns, type TestDaemon } from './support/harness.js';
import { daemonLoggingRequests, type RequestLog } from './support/s3-requests.js';

/**
 * A List reads a document per lease, or per labelled namespace: one whose client cancelled it,
 * or whose deadline passed, stops reading instead of going on for nobody (thousands of GETs,
 * holding the S3 client's sockets).
 */
describe('Lists nobody waits for any more', () => {
  let d: TestDaemon;
  let log: RequestLog;

  /** Time for the daemon to learn the call ended (a pause, not a timing assertion). */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 1_000));

  /**
   * Holds every GET of a key with `part` in it until `release`; `sent` counts them, `reached`
   * resolves at the first.
   */
  function holdGets(part: string): { reached: Promise<void>; release: () => void; sent: () => number } {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    let sent = 0;
    log.intercept = async (op, key) => {
      if (op === 'GetObject' && key.includes(part)) {
        sent++;
        reached();
        await gate;
      }
    };
    return { reached: held, release, sent: () => sent };
  }

  /** Unary `method` with a deadline `ms` away, settling with the error it ends with (null: answered). */
  function callWithDeadline(client: object, method: string, request: object, metadata: Metadata, ms: number): Promise<ServiceError | null> {
    return new Promise((resolve) => {
      (client as Record<string, (r: object, m: Metadata, o: object, cb: (e: ServiceError | null) => void) => void>)[method]!.call(
        client,
        request,
        metadata,
        { deadline: Date.now() + ms },
        (err) => resolve(err),
      );
    });
  }

  beforeAll(async () => {
    ({ d, log } = await daemonLoggingRequests());
  });
  afterAll(async () => {
    log.intercept = undefined;
    await d?.stop();
  });

  /**
   * Holds the GETs of keys with `part`, ends the List with `abandon` once the first is on its way
   * (expecting `code`), lets the held ones go: no GET is sent after those begun before it ended.
   */
  async function readsNoMoreOnceAbandoned(part: string, abandon: (firstGet: Promise<void>) => Promise<ServiceError | null>, code: status): Promise<void> {
    const gets = holdGets(part);
    let sentBefore: number;
    try {
      const ended = abandon(gets.reached);
      await gets.reached;
      expect((await ended)?.code).toBe(code);
      await settle();
      sentBefore = gets.sent();
      // those on their way when the client went were all the List had begun
      expect(sentBefore).toBeLessThan(40);
    } finally {
      gets.release();
    }
    await log.quiet();
    log.intercept = undefined;
    expect(gets.sent()).toBe(sentBefore);
  }

  it('Leases.List whose client cancels reads no lease it had not asked for yet', async () => {
    const leases = d.leases();
    const md = ns('many-leases');
    await Promise.all(Array.from({ length: 40 }, (_, i) => call(leases, 'Create', { id: `lease-${String(i).padStart(2, '0')}` }, md)));
    await readsNoMoreOnceAbandoned(
      '/ns/many-leases/leases/',
      async (firstGet) => {
        let ended!: (err: ServiceError | null) => void;
        const answer = new Promise<ServiceError | null>((resolve) => (ended = resolve));
        const listing = (leases as unknown as { List(r: object, m: Metadata, cb: (e: ServiceError | null) => void): { cancel(): void } }).List({ filters: [] }, md, (err) =>
          ended(err),
        );
        // cancelled once its first GET is held
        await firstGet;
        listing.cancel();
        return answer;
      },
      status.CANCELLED,
    );
    // and the daemon lists them all for a client that waits
    const listed = await call<object, { leases: unknown[] }>(leases, 'List', { filters: [] }, md);
    expect(listed.leases).toHaveLength(40);
  });

  it('Namespaces.List whose deadline passes reads no namespace\'s labels it had not asked for yet', async () => {
    const namespaces = d.namespaces();
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => call(namespaces, 'Create', { namespace: { name: `listed-${String(i).padStart(2, '0')}`, labels: { team: 'a' } } })),
    );
    await readsNoMoreOnceAbandoned('namespace-labels/listed-', () => callWithDeadline(namespaces, 'List', { filter: '' }, new Metadata(), 2_000), status.DEADLINE_EXCEEDED);
    const listed = await call<object, { namespaces: unknown[] }>(namespaces, 'List', { filter: 'labels.team==a' });
    expect(listed.namespaces).toHaveLength(40);
  });
});
