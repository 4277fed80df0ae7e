import { createServer, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestsTakeSlots, SocketSlots } from '../../src/blobstore/s3/socket-slots.js';
import { isStoreError } from '../../src/errors.js';

describe('SocketSlots', () => {
  it('refuses a request at once with Unavailable naming the queue when its bound of waiting requests is reached', async () => {
    const slots = new SocketSlots(1, 5_000, 2);
    const held = await slots.take();
    const waiting = [slots.take(), slots.take()];
    const err = await slots.take().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toContain('2 more waiting, the most this daemon queues');
    // those already waiting keep their places
    held();
    (await waiting[0]!)();
    (await waiting[1]!)();
    expect([slots.inUse, slots.queued]).toEqual([0, 0]);
  });

  it('lets as many requests through as it has slots, and the next ones in order as slots come back', async () => {
    const slots = new SocketSlots(2, 5_000);
    const first = await slots.take();
    await slots.take();
    const order: number[] = [];
    const third = slots.take().then((release) => (order.push(3), release));
    const fourth = slots.take().then((release) => (order.push(4), release));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect([slots.inUse, slots.queued, order]).toEqual([2, 2, []]);
    first();
    first(); // a second release of the same slot hands nothing on
    (await third)();
    await fourth;
    expect(order).toEqual([3, 4]);
    expect([slots.inUse, slots.queued]).toEqual([2, 0]);
  });

  it('gives up a wait past its bound with Unavailable naming the queue, and the slot goes to the next', async () => {
    const slots = new SocketSlots(1, 50);
    const held = await slots.take();
    const err = await slots.take().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toContain('1 requests on their way');
    held();
    expect(slots.inUse).toBe(0);
  });
});

/**
 * An HTTP server that answers every PUT after `delayMs`, as an S3 would that takes its time:
 * the client's queueing is what is under test here, not S3 (tests against S3 itself use Swift).
 */
describe('an S3 client whose requests outnumber its sockets', () => {
  let server: Server;
  let endpoint: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.writeHead(200, { ETag: '"e"', 'Content-Length': req.method === 'GET' ? '1048576' : '0' }).end(req.method === 'GET' ? Buffer.alloc(1 << 20) : undefined), req.method === 'GET' ? 0 : 400));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = () =>
    new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 2 }), connectionTimeout: 300 }),
    });
  const sixPuts = (s3: S3Client) =>
    Promise.allSettled(Array.from({ length: 6 }, (_, i) => s3.send(new PutObjectCommand({ Bucket: 'b', Key: `k${i}`, Body: 'x' }))));

  it('fails requests that waited for a socket past the connection timeout (what the slots prevent)', async () => {
    const s3 = client();
    const outcomes = await sixPuts(s3);
    s3.destroy();
    const failed = outcomes.filter((o) => o.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    expect((failed[0] as PromiseRejectedResult).reason.name).toBe('TimeoutError');
  });

  it('keeps a slot for a response whose body is still being read, so requests behind it wait for a socket in the queue, not the agent', async () => {
    const s3 = client();
    requestsTakeSlots(s3, new SocketSlots(2, 10_000));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'b', Key: 'slow-body' }));
    const body = got.Body as Readable;
    const puts = sixPuts(s3);
    // the body is read only later, as a checkpoint read back is read while its parts go on
    await new Promise((resolve) => setTimeout(resolve, 700));
    for await (const chunk of body) void chunk;
    const outcomes = await puts;
    s3.destroy();
    expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : o.status))).toEqual(Array(6).fill('fulfilled'));
  });

  it('sends them all once each waits for a slot before it reaches the agent', async () => {
    const s3 = client();
    requestsTakeSlots(s3, new SocketSlots(2, 10_000));
    const outcomes = await sixPuts(s3);
    s3.destroy();
    expect(outcomes.map((o) => o.status)).toEqual(Array(6).fill('fulfilled'));
  });
});
