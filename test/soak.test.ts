import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { protos } from '../src/grpc/proto.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { call, collect, newBucket, ns, s3, tempDir, writeBlob } from './support/harness.js';

/**
 * A bounded soak: concurrent clients mixing write, read, info, list and delete against the
 * daemon running as its own process. Short here; `npm run soak` runs the long form
 * (SOAK_SECONDS=60, SOAK_CLIENTS=32, blobs up to 64 MiB).
 */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 30);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 8);
const MAX_BLOB = Number(process.env.SOAK_MAX_MIB ?? 4) * 1024 * 1024;
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

/** Mostly small blobs, as build caches hold, with a few large ones. */
function blobSize(): number {
  const r = Math.random();
  if (r < 0.7) return 1024 + Math.floor(Math.random() * 256 * 1024);
  if (r < 0.95) return 256 * 1024 + Math.floor(Math.random() * 2 * 1024 * 1024);
  return Math.min(MAX_BLOB, 4 * 1024 * 1024 + Math.floor(Math.random() * MAX_BLOB));
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe(`soak: ${CLIENTS} clients for ${SECONDS}s`, () => {
  let daemon: ChildProcess;
  let client: ContentClient;
  const rss: { t: number; kib: number }[] = [];
  const counts: Record<string, number> = { write: 0, read: 0, info: 0, list: 0, delete: 0 };
  const errors: string[] = [];
  let mismatches = 0;

  beforeAll(async () => {
    const dir = tempDir('s3cs-soak-');
    const socket = join(dir, 'content.sock');
    const bucket = await newBucket();
    daemon = spawn(process.execPath, [CLI, 'serve', '--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region, '--log-level', 'warn'], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: s3().accessKey, AWS_SECRET_ACCESS_KEY: s3().secretKey },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = async () => {
        if (daemon.exitCode === null && (await socketListening(socket))) return resolve();
        if (Date.now() - started > 30_000) return reject(new Error('daemon did not start'));
        setTimeout(() => void poll(), 100);
      };
      poll();
    });
    const Content = protos().content.containerd.services.content.v1.Content as never as new (a: string, c: unknown, o: object) => ContentClient;
    client = new Content(`unix://${socket}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 << 20, 'grpc.max_send_message_length': 16 << 20 });
  });

  afterAll(() => {
    client?.close();
    daemon?.kill('SIGTERM');
  });

  it('runs with zero unexpected errors, byte-identical reads, and flat memory', async () => {
    const start = Date.now();
    const until = start + SECONDS * 1000;
    const sampler = setInterval(() => {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'));
      if (m) rss.push({ t: Date.now() - start, kib: Number(m[1]) });
    }, 250);

    const worker = async (id: number) => {
      const mine: string[] = [];
      let n = 0;
      while (Date.now() < until) {
        const r = Math.random();
        try {
          if (r < 0.35 || mine.length === 0) {
            const data = randomBytes(blobSize());
            const done = await writeBlob(client, `soak-${id}-${n++}`, data, { expected: sha(data) });
            mine.push(done.digest);
            counts.write!++;
          } else if (r < 0.7) {
            const digest = mine[Math.floor(Math.random() * mine.length)]!;
            const chunks = await collect<ReadContentResponse__Output>(client.Read({ digest }, ns()));
            if (sha(Buffer.concat(chunks.map((c) => c.data))) !== digest) mismatches++;
            counts.read!++;
          } else if (r < 0.85) {
            await call(client, 'Info', { digest: mine[Math.floor(Math.random() * mine.length)]! });
            counts.info!++;
          } else if (r < 0.92) {
            await collect(client.List({ filters: [] }, ns()));
            counts.list!++;
          } else {
            const digest = mine.splice(Math.floor(Math.random() * mine.length), 1)[0]!;
            await call(client, 'Delete', { digest });
            counts.delete!++;
          }
        } catch (err) {
          errors.push(`${(err as { code?: number }).code ?? ''} ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => worker(i)));
    clearInterval(sampler);

    // Warm-up is the first half (the heap and the S3 connection pool grow to the load); then
    // the first 10 s after it (a sixth of the run in the short form) are compared with the last.
    const window = Math.min(10_000, (SECONDS * 1000) / 6);
    const warmUp = (SECONDS * 1000) / 2;
    const avg = (from: number, to: number) => {
      const xs = rss.filter((s) => s.t >= from && s.t < to).map((s) => s.kib);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const early = avg(warmUp, warmUp + window);
    const late = avg(SECONDS * 1000 - window, SECONDS * 1000);
    const figures = { counts, errors: errors.length, firstErrors: errors.slice(0, 3), mismatches, rssEarlyMiB: Math.round(early / 1024), rssLateMiB: Math.round(late / 1024), peakMiB: Math.round(Math.max(...rss.map((s) => s.kib)) / 1024) };
    console.log(`soak figures: ${JSON.stringify(figures)}`);
    expect(errors.slice(0, 5)).toEqual([]);
    expect(mismatches).toBe(0);
    expect(counts.write! + counts.read!).toBeGreaterThan(CLIENTS);
    expect(late).toBeLessThanOrEqual(early * 1.2);
  }, (SECONDS + 120) * 1000);
});

/** Whether a connection to the socket at `path` is taken (the daemon binds it under a name of its own, then links it there). */
function socketListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
