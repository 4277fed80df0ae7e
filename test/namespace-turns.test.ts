import { Metadata, status, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NamespacesClient } from '../src/generated/containerd/services/namespaces/v1/Namespaces.js';
import type { GetNamespaceResponse__Output } from '../src/generated/containerd/services/namespaces/v1/GetNamespaceResponse.js';
import { call, failure, type TestDaemon } from './support/harness.js';
import { daemonLoggingRequests, type RequestLog } from './support/s3-requests.js';

/**
 * Creates, Updates and Deletes of one namespace run one at a time (each reads the namespace's
 * labels and writes them back whole); what waits behind them is bounded, and a client that goes
 * away leaves the line.
 */
describe('Changes of one namespace', () => {
  let d: TestDaemon;
  let log: RequestLog;
  let client: NamespacesClient;

  const update = (name: string, value: string) =>
    call<object, object>(client, 'Update', { namespace: { name, labels: { n: value } }, update_mask: { paths: ['labels.n'] } });
  const labelsOf = async (name: string) => (await call<object, GetNamespaceResponse__Output>(client, 'Get', { name })).namespace!.labels;

  /** Holds every write of `name`'s labels until the returned release is called; `reached` once one is held. */
  function holdLabelWrites(name: string): { reached: Promise<void>; release: () => void } {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    log.intercept = async (op, key) => {
      if (op === 'PutObject' && key.endsWith(`namespace-labels/${name}`)) {
        reached();
        await gate;
      }
    };
    return { reached: held, release };
  }

  /** Time for calls already sent to reach the daemon's queue (a pause, not a timing assertion). */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 1_000));

  beforeAll(async () => {
    ({ d, log } = await daemonLoggingRequests());
    client = d.namespaces();
  });
  afterAll(async () => {
    log.intercept = undefined;
    await d?.stop();
  });

  it('take at most 8 at once, the one under way among them: the next is ResourceExhausted naming the namespace, another namespace goes on, and those queued then run in order', async () => {
    await call(client, 'Create', { namespace: { name: 'busy', labels: {} } });
    await call(client, 'Create', { namespace: { name: 'other', labels: {} } });
    const { reached, release } = holdLabelWrites('busy');
    try {
      const first = update('busy', '0');
      await reached;
      const queued = Array.from({ length: 7 }, (_, i) => update('busy', String(i + 1)));
      await settle();
      const refused = await failure(update('busy', 'too many'));
      expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused.details).toContain('namespace "busy"');
      await update('other', 'not held up');
      expect(await labelsOf('other')).toEqual({ n: 'not held up' });
      release();
      await Promise.all([first, ...queued]);
    } finally {
      release();
      log.intercept = undefined;
    }
    // the last queued ran last
    expect(await labelsOf('busy')).toEqual({ n: '7' });
  });

  it('a call whose client cancels while it waits leaves the line, and its change is not made', async () => {
    await call(client, 'Create', { namespace: { name: 'left', labels: { n: 'before' } } });
    const labelWrites = () => log.sent.filter((r) => r.op === 'PutObject' && r.key.endsWith('namespace-labels/left')).length;
    const writesBefore = labelWrites();
    const { reached, release } = holdLabelWrites('left');
    try {
      const first = update('left', 'first');
      await reached;
      let cancelled!: Promise<ServiceError | null>;
      const waiting: ClientUnaryCall = (() => {
        let done!: (err: ServiceError | null) => void;
        cancelled = new Promise((resolve) => (done = resolve));
        const md = new Metadata();
        return (client as unknown as { Update: (req: object, md: Metadata, cb: (err: ServiceError | null) => void) => ClientUnaryCall }).Update(
          { namespace: { name: 'left', labels: { n: 'cancelled' } }, update_mask: { paths: ['labels.n'] } },
          md,
          (err) => done(err),
        );
      })();
      await settle();
      waiting.cancel();
      expect((await cancelled)?.code).toBe(status.CANCELLED);
      // the place it gave up is free: seven more fit beside the first
      const queued = Array.from({ length: 7 }, (_, i) => update('left', `queued ${i}`));
      await settle();
      release();
      await Promise.all([first, ...queued]);
    } finally {
      release();
      log.intercept = undefined;
    }
    // the first and the seven wrote the labels; the cancelled call never did
    expect(labelWrites() - writesBefore).toBe(8);
    expect(await labelsOf('left')).toEqual({ n: 'queued 6' });
  });
});
