import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { inject } from 'vitest';
import { resolveConfig, type Config, type Flags } from '../../src/config.js';
import type { BlobStore } from '../../src/blobstore/types.js';
import { protos } from '../../src/grpc/proto.js';
import { clientFor } from './s3-client.js';
import { Daemon } from '../../src/server.js';
import type { ContentClient } from '../../src/generated/containerd/services/content/v1/Content.js';
import type { LeasesClient } from '../../src/generated/containerd/services/leases/v1/Leases.js';
import type { NamespacesClient } from '../../src/generated/containerd/services/namespaces/v1/Namespaces.js';
import type { HealthClient } from '../../src/generated/grpc/health/v1/Health.js';
import type { CacheRecordsClient } from '../../src/generated/s3cs/records/v1/CacheRecords.js';
import type { WriteContentRequest } from '../../src/generated/containerd/services/content/v1/WriteContentRequest.js';
import type { WriteContentResponse__Output } from '../../src/generated/containerd/services/content/v1/WriteContentResponse.js';

export const s3 = () => inject('s3');

/** The daemon gets its S3 credentials the only way it accepts them: its own environment. */
export function useS3Credentials(): void {
  const target = s3();
  process.env.AWS_ACCESS_KEY_ID = target.accessKey;
  process.env.AWS_SECRET_ACCESS_KEY = target.secretKey;
}

/** A client for the test's own checks on the bucket, independent of the daemon. */
export function rawS3(): S3Client {
  return clientFor(s3());
}

export async function newBucket(): Promise<string> {
  const name = `${inject('bucketPrefix')}${randomBytes(6).toString('hex')}`;
  await rawS3().send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

export async function listKeys(bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await rawS3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of out.Contents ?? []) keys.push(o.Key!);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

export async function getObject(bucket: string, key: string): Promise<Buffer> {
  const out = await rawS3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

export async function putObject(bucket: string, key: string, body: Buffer): Promise<void> {
  await rawS3().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

/**
 * Waits until every multipart upload in the bucket is older than `graceMs` by the store's own
 * stamps. Swift rounds an upload's Initiated up to the next second, so an upload a test started
 * `graceMs` ago can still look younger than that to a daemon's sweep.
 */
export async function uploadsOlderThan(bucket: string, graceMs: number): Promise<void> {
  const out = await rawS3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  const newest = Math.max(0, ...(out.Uploads ?? []).map((u) => u.Initiated!.getTime()));
  const wait = newest + graceMs + 250 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

export function tempDir(label = 's3cs-test-'): string {
  return mkdtempSync(join(tmpdir(), label));
}

export const quietLogger = () => pino({ level: process.env.S3CS_TEST_LOG ?? 'silent' });

export interface TestDaemon {
  daemon: Daemon;
  logs: Record<string, unknown>[];
  socket: string;
  bucket: string | undefined;
  content(): ContentClient;
  leases(): LeasesClient;
  namespaces(): NamespacesClient;
  health(): HealthClient;
  records(): CacheRecordsClient;
  stop(): Promise<void>;
}

/**
 * Starts a daemon in this process on a fresh unix socket, on S3 (a new bucket) or a directory.
 * `store` builds the daemon's BlobStore from its config, for a test that watches the store itself.
 */
export async function startDaemon(
  options: { backend?: 's3' | 'fs'; bucket?: string; flags?: Flags; store?: (config: Config) => BlobStore | Promise<BlobStore> } = {},
): Promise<TestDaemon> {
  const logs: Record<string, unknown>[] = [];
  const dir = tempDir();
  const socket = join(dir, 'content.sock');
  const backend = options.backend ?? 's3';
  let bucket: string | undefined;
  const flags: Flags = { address: [`unix://${socket}`], root: join(dir, 'root'), ...options.flags };
  if (backend === 's3') {
    useS3Credentials();
    bucket = options.bucket ?? (await newBucket());
    Object.assign(flags, { bucket, endpointUrl: s3().endpoint, region: s3().region }, options.flags);
  }
  const config = resolveConfig(flags, {});
  // Every line the daemon logs (debug and up) is kept for the test to look at.
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const daemon = await Daemon.start(config, logger, await options.store?.(config));
  const clients: { close(): void }[] = [];
  const make = <T extends { close(): void }>(ctor: new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options?: object) => T): T => {
    const client = new ctor(`unix://${socket}`, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.max_send_message_length': 16 << 20,
    });
    clients.push(client);
    return client;
  };
  const p = protos();
  return {
    daemon,
    logs,
    socket,
    bucket,
    content: () => make(p.content.containerd.services.content.v1.Content as never) as ContentClient,
    leases: () => make(p.leases.containerd.services.leases.v1.Leases as never) as LeasesClient,
    namespaces: () => make(p.namespaces.containerd.services.namespaces.v1.Namespaces as never) as NamespacesClient,
    health: () => make(p.health.grpc.health.v1.Health as never) as HealthClient,
    records: () => make(p.records.s3cs.records.v1.CacheRecords as never) as CacheRecordsClient,
    stop: async () => {
      for (const c of clients) c.close();
      await daemon.stop(5_000);
    },
  };
}

export function ns(name = 'test'): Metadata {
  const md = new Metadata();
  md.set('containerd-namespace', name);
  return md;
}

/** Calls a unary method; resolves with the response or rejects with the ServiceError. */
export function call<Req, Res>(
  client: object,
  method: string,
  request: Req,
  metadata: Metadata = ns(),
): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client as Record<string, (r: Req, m: Metadata, cb: (e: ServiceError | null, v?: Res) => void) => void>)[method]!.call(
      client,
      request,
      metadata,
      (err, value) => (err ? reject(err) : resolve(value as Res)),
    );
  });
}

/** Collects a server stream; rejects with the ServiceError that ended it. */
export function collect<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const items: T[] = [];
    stream.on('data', (item: T) => items.push(item));
    stream.on('error', reject);
    stream.on('end', () => resolve(items));
  });
}

/** Expects a promise to fail with a gRPC code; returns the error for further checks. */
export async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/**
 * One Write stream driven request by request: `send` resolves with the response to that
 * request, or rejects with the status that ended the stream.
 */
export class WriteSession {
  private readonly stream;
  private readonly waiting: { resolve(r: WriteContentResponse__Output): void; reject(e: unknown): void }[] = [];
  private error: ServiceError | undefined;
  readonly responses: WriteContentResponse__Output[] = [];
  readonly ended: Promise<void>;

  constructor(client: ContentClient, metadata: Metadata = ns()) {
    this.stream = client.Write(metadata);
    this.stream.on('data', (r: WriteContentResponse__Output) => {
      this.responses.push(r);
      this.waiting.shift()?.resolve(r);
    });
    this.ended = new Promise((resolve) => {
      this.stream.on('error', (e: ServiceError) => {
        this.error = e;
        for (const w of this.waiting.splice(0)) w.reject(e);
        resolve();
      });
      this.stream.on('end', () => {
        for (const w of this.waiting.splice(0)) w.reject(new Error('stream ended without a response'));
        resolve();
      });
    });
  }

  send(request: WriteContentRequest): Promise<WriteContentResponse__Output> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.stream.write(request);
    });
  }

  close(): void {
    this.stream.end();
  }

  cancel(): void {
    this.stream.cancel();
  }
}

/** Writes a whole blob the way containerd's client does: STAT, WRITE…, COMMIT. */
export async function writeBlob(
  client: ContentClient,
  ref: string,
  data: Buffer,
  options: { expected?: string; labels?: Record<string, string>; metadata?: Metadata; chunk?: number } = {},
): Promise<WriteContentResponse__Output> {
  const session = new WriteSession(client, options.metadata);
  const expected = options.expected ?? '';
  await session.send({ action: 'STAT', ref, total: data.length, expected });
  const chunk = options.chunk ?? 1 << 20;
  for (let off = 0; off < data.length; off += chunk) {
    await session.send({ action: 'WRITE', ref, offset: off, data: data.subarray(off, off + chunk) });
  }
  const done = await session.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, expected, labels: options.labels ?? {} });
  session.close();
  await session.ended;
  return done;
}

export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}

/** Waits until `probe` holds, asking every `everyMs`; fails after `ms` (a bound, not a timing assertion). */
export async function until(probe: () => boolean | Promise<boolean>, ms = 30_000, everyMs = 100): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`condition not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs a collector until `done` holds, at most `maxRuns` times. A run whose last check took
 * longer than the collector's 5-second window deletes nothing (a loaded machine can make it
 * so); the next run tries again, as the daemon's next scheduled run would.
 */
/**
 * Runs a collector until `count` runs went ahead. A run that took the bucket's lock too slowly
 * to be sure of it under load gives way (it is `skipped`), as it would in a daemon; a test that
 * needs runs to have happened must not count those.
 */
export async function collectRuns<R extends { skipped?: string }>(run: () => Promise<R>, count: number): Promise<R[]> {
  const done: R[] = [];
  for (let tries = 0; done.length < count && tries < count + 6; tries++) {
    const report = await run();
    if (report.skipped === undefined) done.push(report);
  }
  if (done.length < count) throw new Error(`only ${done.length} of ${count} collector runs went ahead`);
  return done;
}

/**
 * Runs the collector until `done`, at most `maxRuns` times. A run that gave way for the bucket's
 * lock (its write and read back took too long to be sure no other collector took it) or whose last
 * check took longer than writers wait deletes nothing, by design: on a machine the whole suite
 * loads, that happened run after run, so such runs are not counted, up to three times `maxRuns`
 * in all and 40 s of runs. Every report is returned, for a test to show when it fails.
 */
export async function collectUntil<R extends { skipped?: string; deleted?: boolean; reclaimable?: { count: number } }>(
  run: () => Promise<R>,
  done: () => Promise<boolean>,
  maxRuns = 6,
): Promise<R[]> {
  const reports: R[] = [];
  let counted = 0;
  // within a test's 60 s, so that a failure shows the reports rather than a timeout
  const until = performance.now() + 40_000;
  while (counted < maxRuns && reports.length < 3 * maxRuns && performance.now() < until) {
    const report = await run();
    reports.push(report);
    if (await done()) break;
    const tooSlow = report.skipped !== undefined || (report.deleted === true && (report.reclaimable?.count ?? 0) > 0);
    if (!tooSlow) counted++;
  }
  return reports;
}
