import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../src/config.js';
import { Daemon, openBlobStore } from '../src/server.js';
import type { HealthCheckResponse__Output } from '../src/generated/grpc/health/v1/HealthCheckResponse.js';
import { overriding } from './support/overriding.js';
import { collect, newBucket, ns, quietLogger, randomBlob, s3, startDaemon, tempDir, until, useS3Credentials, writeBlob } from './support/harness.js';

/**
 * Connections this process holds open to `port` (Linux: its descriptors' sockets, looked up in
 * the kernel's table of TCP connections). Idle keep-alive sockets count, as they should here.
 */
function connectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const remote = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // remote address, state (01: established), inode
      if (f.length > 9 && f[2]!.endsWith(remote) && f[3] === '01' && inodes.has(f[9]!)) count++;
    }
  }
  return count;
}

/** A daemon that cannot start leaves nothing behind: a caller (or `serve`) has nothing to clean up. */
describe('a daemon whose --metrics-address is taken', () => {
  const taken = createServer();
  afterAll(() => taken.close());

  it('refuses to start, naming the setting, and lets go of its socket, its S3 connections and its --cache-dir', async () => {
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    useS3Credentials();
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    const flags = { address: [`unix://${socket}`], bucket: await newBucket(), endpointUrl: s3().endpoint, region: s3().region };
    const config = resolveConfig({ ...flags, cacheDir: join(dir, 'tier'), metricsAddress: `127.0.0.1:${port}` }, {});
    const s3Port = Number(new URL(s3().endpoint).port);
    // the test's own S3 client made the bucket
    const others = connectionsTo(s3Port);
    // as serve does: the store is opened and probed first, so it holds connections to S3
    const store = await openBlobStore(config, quietLogger());
    await store.check();
    expect(connectionsTo(s3Port)).toBeGreaterThan(others);

    const started = Daemon.start(config, quietLogger(), store);
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(`--metrics-address tcp://127.0.0.1:${port}: listen EADDRINUSE`);
    expect(existsSync(socket)).toBe(false);
    expect(existsSync(join(dir, 'tier', 'owner'))).toBe(false);
    await until(() => connectionsTo(s3Port) <= others, 5_000);
  });
});

describe('a daemon whose collector runs every --gc-interval', () => {
  it('starts and serves with an interval that has fractions of a millisecond (what it keeps of listings lasts twice it)', async () => {
    const d = await startDaemon({ flags: { gcInterval: '1h0.25ms' } });
    try {
      const digest = (await writeBlob(d.content(), 'fractional-interval', randomBlob(64))).digest;
      const listed = await collect<{ info: { digest: string }[] }>(d.content().List({ filters: [] }, ns()));
      expect(listed.flatMap((p) => p.info.map((i) => i.digest))).toContain(digest);
    } finally {
      await d.stop();
    }
  });
});

describe('a daemon on a socket path near the 107 bytes a socket path may have', () => {
  /** A directory whose path with `name` in it is exactly 107 bytes. */
  const pathOf107 = (name: string) => {
    const dir = tempDir();
    const pad = 107 - Buffer.byteLength(join(dir, 'p', name));
    return join(dir, 'p'.repeat(pad + 1), name);
  };

  it('serves on one of exactly 107 bytes, binding first at a name no longer than its own', async () => {
    const socket = pathOf107('content.sock');
    expect(Buffer.byteLength(socket)).toBe(107);
    const daemon = await Daemon.start(resolveConfig({ address: [`unix://${socket}`], root: join(tempDir(), 'data') }, {}), quietLogger());
    try {
      expect(existsSync(socket)).toBe(true);
      expect(readdirSync(join(socket, '..'))).toEqual(['content.sock']);
    } finally {
      await daemon.stop(5_000);
    }
  });

  it('refuses one whose first binding would not fit, naming --address, and leaves no file behind', async () => {
    const socket = pathOf107('s');
    const started = Daemon.start(resolveConfig({ address: [`unix://${socket}`], root: join(tempDir(), 'data') }, {}), quietLogger());
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/^--address unix:\/\/.*: a socket's path may be at most 107 bytes/);
    expect(readdirSync(join(socket, '..'))).toEqual([]);
  });
});

describe('a daemon that stops', () => {
  const start = async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    const daemon = await Daemon.start(resolveConfig({ address: [`unix://${socket}`], root: join(dir, 'data') }, {}), quietLogger());
    return { daemon, socket };
  };

  it('removes its socket', async () => {
    const { daemon, socket } = await start();
    expect(existsSync(socket)).toBe(true);
    await daemon.stop(5_000);
    expect(existsSync(socket)).toBe(false);
  });

  it('leaves alone a file that replaced its socket meanwhile', async () => {
    const { daemon, socket } = await start();
    // another daemon started on the path after this one's socket was removed, say
    rmSync(socket);
    writeFileSync(socket, 'not the daemon\'s');
    await daemon.stop(5_000);
    expect(readFileSync(socket, 'utf8')).toBe("not the daemon's");
  });
});

/** Whether `promise` settles within `ms` (a bound for a stop that would otherwise hang the test, not a timing). */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]).finally(() => clearTimeout(timer));
}

describe('a daemon stopped while its collector waits for S3', () => {
  it('says NOT_SERVING at once and stops within --shutdown-timeout, without waiting for the collection', { timeout: 60_000 }, async () => {
    let listing = false;
    let answer!: () => void;
    // S3 that does not answer the collector's listing of the blobs until the test ends
    const silent = new Promise<void>((resolve) => (answer = resolve));
    const d = await startDaemon({
      flags: { gcInterval: '200ms' },
      store: async (config) => {
        const store = await openBlobStore(config, quietLogger());
        return overriding(store, {
          // eslint-disable-next-line require-yield
          async *listBlobs() {
            listing = true;
            await silent;
          },
        });
      },
    });
    const health = d.health();
    const seen: string[] = [];
    const watch = health.Watch({ service: '' });
    watch.on('data', (r: HealthCheckResponse__Output) => seen.push(r.status));
    watch.on('error', () => {});
    try {
      await until(() => listing && seen.includes('SERVING'));
      const stopping = d.daemon.stop(1_000);
      await until(() => seen.includes('NOT_SERVING'), 5_000);
      expect(await settlesWithin(stopping, 20_000)).toBe(true);
      await stopping;
    } finally {
      answer();
      health.close();
    }
  });
});

describe('a daemon whose store fails to close', () => {
  it('still closes its metrics endpoint, and its stop fails naming what went wrong', async () => {
    const d = await startDaemon({
      flags: { metricsAddress: '127.0.0.1:0' },
      store: async (config) => {
        const store = await openBlobStore(config, quietLogger());
        return overriding(store, {
          async close() {
            await store.close();
            throw new Error('cannot remove the spill directory: EACCES');
          },
        });
      },
    });
    const url = d.daemon.metrics!.url;
    const scraped = await fetch(url);
    await scraped.text();
    expect(scraped.status).toBe(200);
    try {
      await expect(d.daemon.stop(1_000)).rejects.toThrow('cannot remove the spill directory: EACCES');
      await expect(fetch(url)).rejects.toThrow();
      expect(d.logs.some((l) => l.level === 50 && String((l.err as { message?: string } | undefined)?.message).includes('EACCES'))).toBe(true);
    } finally {
      await d.daemon.metrics!.close().catch(() => {});
    }
  });
});
