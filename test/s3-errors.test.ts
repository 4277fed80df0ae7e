import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { status } from '@grpc/grpc-js';
import { CreateBucketCommand, DeleteBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { resolveConfig } from '../src/config.js';
import { isStoreError } from '../src/errors.js';
import { s3Requests } from '../src/metrics/registry.js';
import { digestOf } from '../src/digest.js';
import { daemonLoggingRequests } from './support/s3-requests.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import { call, collect, failure, newBucket, ns, randomBlob, rawS3, startDaemon, type TestDaemon, until, writeBlob, WriteSession } from './support/harness.js';

/** What S3 says reaches the client as a status that names the cause. */
describe('S3 errors a client sees', () => {
  describe('a bucket deleted under the daemon', () => {
    let d: TestDaemon;
    beforeAll(async () => {
      d = await startDaemon();
    });
    afterAll(async () => {
      await rawS3().send(new CreateBucketCommand({ Bucket: d.bucket! })).catch(() => undefined);
      await d?.stop();
    });

    it('is FailedPrecondition naming the bucket, health says NOT_SERVING, and SERVING once it is back', { timeout: 90_000 }, async () => {
      await rawS3().send(new DeleteBucketCommand({ Bucket: d.bucket! }));
      // Swift keeps a container's info cached for a minute: one the daemon's start-up work looked up
      // while the DELETE went through can stay cached as existing, and PUTs into it succeed. A HEAD
      // asks the container server itself, and what it finds replaces what is cached.
      await until(() => rawS3().send(new HeadBucketCommand({ Bucket: d.bucket! })).then(() => false, () => true), 70_000, 500);
      const err = await failure(writeBlob(d.content(), 'no-bucket', randomBlob(100)));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain(`bucket ${d.bucket}`);
      expect(err.details).toContain('does not exist');
      const listed = await failure(collect<ListContentResponse__Output>(d.content().List({ filters: [] }, ns('bucket'))));
      expect(listed.code).toBe(status.FAILED_PRECONDITION);
      await until(async () => ((await call(d.health(), 'Check', { service: '' })) as { status: string }).status === 'NOT_SERVING');
      await rawS3().send(new CreateBucketCommand({ Bucket: d.bucket! }));
      await until(async () => ((await call(d.health(), 'Check', { service: '' })) as { status: string }).status === 'SERVING');
    });
  });

  describe('credentials the bucket refuses', () => {
    let d: TestDaemon;
    beforeAll(async () => {
      const bucket = await newBucket();
      d = await startDaemon({
        bucket,
        store: (config) =>
          new S3BlobStore({ ...config.s3!, credentials: { accessKeyId: 'test:tester', secretAccessKey: 'not-the-secret' } }),
      });
    });
    afterAll(async () => d?.stop());

    it('is PermissionDenied naming the operation and the key', async () => {
      const err = await failure(call(d.content(), 'Info', { digest: `sha256:${'b'.repeat(64)}` }));
      expect(err.code).toBe(status.PERMISSION_DENIED);
      // Info asks for the blob and its documents at once: whichever is refused first is named
      expect(err.details).toMatch(new RegExp(`(HEAD|GET) \\S*sha256:${'b'.repeat(64)}: access denied`));
    });
  });

  describe('a response that stalls mid-body', () => {
    let server: Server;
    beforeAll(async () => {
      // answers every GET with its headers and the first KiB of a MiB, then sends nothing more
      server = createServer((_req, res) => {
        res.writeHead(200, { 'content-length': String(1024 * 1024), 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(1024, 7));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    // without the idle timeout the Read waits for ever: the test's own timeout fails it
    it('fails the Read with Unavailable naming the GET once its socket is idle past the timeout, instead of holding it for ever', async () => {
      const { port } = server.address() as AddressInfo;
      const config = resolveConfig({ bucket: 'stalled', endpointUrl: `http://127.0.0.1:${port}`, region: 'us-east-1' }, {});
      const store = new S3BlobStore({ ...config.s3!, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, socketIdleTimeoutMs: 500 });
      const digest = `sha256:${'a'.repeat(64)}`;
      try {
        const err = await (async () => {
          for await (const piece of await store.readBlob(digest, 0, 1024 * 1024, { size: 1024 * 1024 })) void piece;
        })().catch((e: unknown) => e);
        expect(isStoreError(err, 'unavailable')).toBe(true);
        expect((err as Error).message).toContain(`GET blobs/${digest}: the response broke off`);
      } finally {
        await store.close();
      }
    });
  });

  describe('an S3 that takes requests and never answers', () => {
    let silent: NetServer;
    const sockets = new Set<Socket>();
    /** The request lines it was sent, in order. */
    const requests: string[] = [];
    /** HEADs it was sent for the blob of `digest` (its key's colon goes URL-encoded). */
    const headsOf = (digest: string) => requests.filter((line) => line.startsWith('HEAD ') && line.includes(digest.slice('sha256:'.length))).length;
    /** Set, it answers every request 404 from then on: S3 is back. */
    let answering = false;
    /** Blobs (their hex) whose first request it leaves unanswered even while answering: one stuck socket. */
    const stuckOnce = new Set<string>();
    /** HEADs of the bucket itself it was sent: the probes. */
    const probes = () => requests.filter((line) => /^HEAD \/silent\/? HTTP/.test(line)).length;
    /** A store of the bucket `silent` on this server, its sockets' idle timeouts shortened. */
    const silentStore = (socketIdleTimeoutMs: number | Record<string, number>) => {
      const { port } = silent.address() as AddressInfo;
      const config = resolveConfig({ bucket: 'silent', endpointUrl: `http://127.0.0.1:${port}`, region: 'us-east-1' }, {});
      return new S3BlobStore({ ...config.s3!, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, socketIdleTimeoutMs });
    };
    beforeAll(async () => {
      // reads every request and sends nothing back, as behind a partition that drops the answers
      silent = createNetServer((socket) => {
        sockets.add(socket);
        socket.on('data', (data: Buffer) => {
          for (const line of data.toString('latin1').split('\r\n')) {
            if (!/^[A-Z]+ \S+ HTTP\/1\.1$/.test(line)) continue;
            requests.push(line);
            const stuck = [...stuckOnce].find((hex) => line.includes(hex));
            if (stuck) stuckOnce.delete(stuck);
            else if (answering) socket.write('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
          }
        });
        socket.on('error', () => undefined);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it("fails a lookup Unavailable after one attempt's idle timeout, not tried again, while a server-side copy, which a store may answer only once done, waits longer", async () => {
      // the defaults (a minute and 5 minutes) shortened
      const store = silentStore({ default: 300, slow: 20_000, probe: 300 });
      const digest = `sha256:${'c'.repeat(64)}`;
      try {
        const copy = store.touchBlob(digest, 10).then(
          () => 'answered',
          (err: unknown) => err,
        );
        const started = performance.now();
        const err = await store.statBlob(digest).catch((e: unknown) => e);
        expect(isStoreError(err, 'unavailable'), String(err)).toBe(true);
        expect((err as Error).message).toContain(`blobs/${digest}`);
        expect((err as Error).message).toContain('silent for 300 ms');
        // one attempt: the SDK takes a timeout for transient and tried three times, 3 minutes in all by default
        expect(headsOf(digest)).toBe(1);
        expect(performance.now() - started).toBeLessThan(10_000);
        const still = await Promise.race([copy, new Promise((resolve) => setTimeout(() => resolve('waiting'), 1_000))]);
        expect(still).toBe('waiting');
      } finally {
        for (const socket of sockets) socket.destroy();
        await store.close();
      }
    });

    it('once an attempt got no answer, calls fail at once Unavailable without being sent, until S3 answers the probe again', async () => {
      const store = silentStore(300);
      const [first, second, third] = ['d', 'e', 'f'].map((c) => `sha256:${c.repeat(64)}`);
      try {
        const err = await store.statBlob(first!).catch((e: unknown) => e);
        expect(isStoreError(err, 'unavailable'), String(err)).toBe(true);
        const refused = await store.statBlob(second!).catch((e: unknown) => e);
        expect(isStoreError(refused, 'unavailable'), String(refused)).toBe(true);
        expect((refused as Error).message).toContain(`blobs/${second}: S3Silent: not sent: S3 has not answered since`);
        expect(headsOf(second!)).toBe(0);
        // the probe that found S3 silent, then the next a second after it got no answer: still refused
        const asked = probes();
        await until(() => probes() > asked, 5_000, 20);
        const still = await store.statBlob(second!).catch((e: unknown) => e);
        expect((still as Error).message).toContain('not sent');
        answering = true;
        let found: unknown = 'refused';
        await until(async () => {
          found = await store.statBlob(third!).catch((e: unknown) => {
            expect((e as Error).message).toContain('not sent');
            return 'refused';
          });
          return found !== 'refused';
        }, 10_000);
        // S3's 404 for it: sent, and answered as a blob not there
        expect(found).toBeUndefined();
        expect(headsOf(third!)).toBe(1);
      } finally {
        answering = false;
        for (const socket of sockets) socket.destroy();
        await store.close();
      }
    });

    it('one stuck socket while S3 answers a probe: the call is tried again and answered, and nothing is held back', async () => {
      const store = silentStore(300);
      const [stuck, next] = ['7', '8'].map((c) => `sha256:${c.repeat(64)}`);
      answering = true;
      stuckOnce.add(stuck!.slice('sha256:'.length));
      try {
        const asked = probes();
        // its first HEAD gets no answer; the probe does, so the SDK sends it again
        expect(await store.statBlob(stuck!)).toBeUndefined();
        expect(headsOf(stuck!)).toBe(2);
        expect(probes()).toBe(asked + 1);
        expect(await store.statBlob(next!)).toBeUndefined();
        expect(headsOf(next!)).toBe(1);
      } finally {
        answering = false;
        stuckOnce.clear();
        for (const socket of sockets) socket.destroy();
        await store.close();
      }
    });
  });

  describe('an S3 that makes no connection (packets dropped before one is made)', () => {
    /**
     * A listener that accepts nothing, with room for one connection in its queue: once the test's
     * own fills it, the kernel drops every SYN after, as a blackhole does. Node accepts every
     * connection by itself, so Python (Swift's own runtime) listens.
     */
    const LISTENER = "import socket, sys\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)\nprint(s.getsockname()[1], flush=True)\nsys.stdin.read()";
    let listener: ChildProcess;
    let filler: Socket;
    let port = 0;
    /** A store of the bucket `blackhole` there, connections given up after 300 ms (10 s by default). */
    const blackholeStore = () => {
      const config = resolveConfig({ bucket: 'blackhole', endpointUrl: `http://127.0.0.1:${port}`, region: 'us-east-1' }, {});
      return new S3BlobStore({ ...config.s3!, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, connectTimeoutMs: 300 });
    };
    /** Requests the daemon's metrics count as not sent, by all operations. */
    const notSent = async () => (await s3Requests.get()).values.filter((v) => v.labels.outcome === 'not_sent').reduce((n, v) => n + v.value, 0);
    beforeAll(async () => {
      listener = spawn('python3', ['-c', LISTENER], { stdio: ['pipe', 'pipe', 'inherit'] });
      const [line] = (await once(createInterface({ input: listener.stdout! }), 'line')) as [string];
      port = Number(line);
      filler = connect(port, '127.0.0.1');
      await once(filler, 'connect');
    });
    afterAll(() => {
      filler?.destroy();
      listener?.stdin?.end();
      listener?.kill();
    });

    it('fails a lookup Unavailable once an attempt and a HEAD of the bucket both made no connection, and the calls after it at once, not sent', async () => {
      const store = blackholeStore();
      const [first, second] = ['1', '2'].map((c) => `sha256:${c.repeat(64)}`);
      try {
        const err = await store.statBlob(first!).catch((e: unknown) => e);
        expect(isStoreError(err, 'unavailable'), String(err)).toBe(true);
        // before, the SDK tried each attempt's connection three times and the call failed as a timeout, every call alike
        expect((err as Error).message).toContain('S3Silent: no answer: an attempt made no connection within');
        const refused = await store.statBlob(second!).catch((e: unknown) => e);
        expect((refused as Error).message).toContain(`blobs/${second}: S3Silent: not sent: S3 has not answered since`);
        expect((refused as Error).message).toContain('an attempt made no connection within');
      } finally {
        await store.close();
      }
    });

    it('counts the requests it does not send while S3 is silent as not_sent', async () => {
      const store = blackholeStore();
      try {
        await store.statBlob(`sha256:${'3'.repeat(64)}`).catch(() => undefined);
        const before = await notSent();
        await store.statBlob(`sha256:${'4'.repeat(64)}`).catch(() => undefined);
        await store.statBlob(`sha256:${'5'.repeat(64)}`).catch(() => undefined);
        expect((await notSent()) - before).toBe(2);
      } finally {
        await store.close();
      }
    });
  });

  it('a digest given mid-stream whose existence check S3 fails: the stream fails Unavailable, and the ingest keeps every byte for the next one', async () => {
    const { d, log } = await daemonLoggingRequests({ flags: { partSize: '5MiB' } });
    try {
      const MiB = 1024 * 1024;
      const data = randomBlob(12 * MiB);
      const digest = digestOf(data);
      let failed = 0;
      log.intercept = (op, key) => {
        if (op === 'HeadObject' && key === `blobs/${digest}` && failed++ === 0) throw new Error('S3 did not answer, for the test');
      };
      const first = new WriteSession(d.content());
      await first.send({ action: 'STAT', ref: 'checked-late', total: data.length });
      await first.send({ action: 'WRITE', ref: 'checked-late', offset: 0, data: data.subarray(0, 6 * MiB) });
      const err = await failure(first.send({ action: 'WRITE', ref: 'checked-late', offset: 6 * MiB, data: data.subarray(6 * MiB, 7 * MiB), expected: digest }));
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(failed).toBe(1);
      const st = await call<object, { status: { offset: string | number } }>(d.content(), 'Status', { ref: 'checked-late' });
      expect(Number(st.status.offset)).toBe(6 * MiB);
      const next = new WriteSession(d.content());
      await next.send({ action: 'STAT', ref: 'checked-late', total: data.length, expected: digest });
      for (let off = 6 * MiB; off < data.length; off += MiB) {
        await next.send({ action: 'WRITE', ref: 'checked-late', offset: off, data: data.subarray(off, off + MiB) });
      }
      const done = await next.send({ action: 'COMMIT', ref: 'checked-late', total: data.length, offset: data.length, expected: digest });
      expect(done.digest).toBe(digest);
    } finally {
      await d.stop();
    }
  });
});
