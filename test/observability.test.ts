import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { serve } from './support/child.js';
import { makePki } from './support/pki.js';
import { newBucket, randomBlob, s3, tempDir, useS3Credentials, until } from './support/harness.js';
import { listServicesByReflection } from './support/reflection-client.js';

const run = promisify(execFile);
const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };

/*
 * What an operator watches: Prometheus metrics on --metrics-address, an access log line per call,
 * and server reflection for generic gRPC tools. The daemon runs as `serve` in its own process,
 * driven by containerd's own client.
 */

const children: ChildProcess[] = [];
let socket: string;
let metricsUrl: string;
let lines: Record<string, unknown>[];
const dir = tempDir('s3cs-observe-');

/** The value of one sample in Prometheus' text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[3]);
      found = true;
    }
  }
  return found ? total : 0;
}

async function scrape(): Promise<string> {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

function ingest(ref: string, file: string, namespace = 'observe'): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ['--address', socket, '-n', namespace, 'content', 'ingest', ref];
    const child = spawn('sh', ['-c', `exec ctr "$@" < "${file}"`, 'ctr', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ctr content ingest exited ${code}: ${stderr}`))));
  });
}

async function ctrGet(digest: string, namespace = 'observe'): Promise<Buffer> {
  const { stdout } = await run('ctr', ['--address', socket, '-n', namespace, 'content', 'get', digest], { env, encoding: 'buffer', maxBuffer: 64 << 20 });
  return stdout;
}

beforeAll(async () => {
  useS3Credentials();
  const bucket = await newBucket();
  socket = join(dir, 'content.sock');
  const running = await serve(
    ['--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, '--region', s3().region, '--metrics-address', '127.0.0.1:0', '--access-log'],
    children,
  );
  lines = running.lines;
  const serving = lines.find((l) => l.msg === 'serving')!;
  metricsUrl = serving.metrics as string;
}, 60_000);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('metrics', () => {
  it('are served on the address given, as Prometheus text, with the process metrics', async () => {
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const text = await scrape();
    expect(text).toMatch(/^# HELP s3cs_grpc_calls_total /m);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).toMatch(/^s3cs_upload_buffer_limit_bytes 268435456$/m);
  });

  it('answer 404 off /metrics', async () => {
    const res = await fetch(metricsUrl.replace(/\/metrics$/, '/other'));
    expect(res.status).toBe(404);
  });

  it('move with ctr traffic: calls by method and code, bytes in and out, S3 requests', async () => {
    const before = await scrape();
    const data = randomBlob(3 * 1024 * 1024 + 17);
    const digest = digestOf(data);
    const file = join(dir, 'moving.bin');
    writeFileSync(file, data);
    await ingest('moving', file);
    expect((await ctrGet(digest)).equals(data)).toBe(true);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    const content = 'containerd.services.content.v1.Content';
    expect(delta('s3cs_grpc_calls_total', { service: content, method: 'Write', code: 'OK' })).toBe(1);
    expect(delta('s3cs_grpc_calls_total', { service: content, method: 'Info', code: 'OK' })).toBeGreaterThanOrEqual(1);
    expect(delta('s3cs_grpc_calls_total', { service: content, method: 'Read', code: 'OK' })).toBeGreaterThanOrEqual(1);
    expect(delta('s3cs_grpc_call_duration_seconds_count', { service: content, method: 'Write' })).toBe(1);
    expect(delta('s3cs_received_bytes_total')).toBe(data.length);
    expect(delta('s3cs_sent_bytes_total')).toBe(data.length);
    expect(delta('s3cs_s3_requests_total', { operation: 'PutObject', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(delta('s3cs_s3_requests_total', { operation: 'GetObject', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(delta('s3cs_s3_request_duration_seconds_count', { operation: 'PutObject' })).toBeGreaterThanOrEqual(1);
  });

  it('count failed calls by their code', async () => {
    const before = await scrape();
    await expect(ctrGet(digestOf('never stored'))).rejects.toThrow(/not found/);
    const after = await scrape();
    const labels = { service: 'containerd.services.content.v1.Content', method: 'Info', code: 'NOT_FOUND' };
    expect(sample(after, 's3cs_grpc_calls_total', labels) - sample(before, 's3cs_grpc_calls_total', labels)).toBe(1);
  });

  it('show a Write stream open while it is, and live ingests; one its client went away from is counted as cancelled', async () => {
    const cancelled = { service: 'containerd.services.content.v1.Content', method: 'Write', code: 'CANCELLED' };
    const before = sample(await scrape(), 's3cs_grpc_calls_total', cancelled);
    const child = spawn('ctr', ['--address', socket, '-n', 'observe', 'content', 'ingest', 'held-open'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(child);
    child.stdin.write(randomBlob(1000));
    await until(async () => {
      const text = await scrape();
      return sample(text, 's3cs_streams_open') >= 1 && sample(text, 's3cs_ingests_live') >= 1;
    });
    child.kill('SIGKILL');
    await until(async () => sample(await scrape(), 's3cs_streams_open') === 0);
    expect(sample(await scrape(), 's3cs_grpc_calls_total', cancelled) - before).toBe(1);
  });
});

describe('access log', () => {
  it('writes one line per call with method, namespace, code, bytes and duration', async () => {
    const data = randomBlob(5000);
    const file = join(dir, 'logged.bin');
    writeFileSync(file, data);
    const from = lines.length;
    await ingest('logged', file, 'access-ns');
    await until(() => lines.slice(from).some((l) => l.msg === 'access' && l.method === 'containerd.services.content.v1.Content/Write'));
    const write = lines.slice(from).find((l) => l.msg === 'access' && l.method === 'containerd.services.content.v1.Content/Write')!;
    expect(write).toMatchObject({ ns: 'access-ns', code: 'OK', bytesIn: data.length, bytesOut: 0 });
    expect(typeof write.ms).toBe('number');
  });
});

describe('server reflection', () => {
  /** The services the daemon lists through reflection `version`. */
  const listedServices = (version: 'v1' | 'v1alpha') => listServicesByReflection(`unix://${socket}`, version);

  const served = [
    'containerd.services.content.v1.Content',
    'containerd.services.leases.v1.Leases',
    'containerd.services.namespaces.v1.Namespaces',
    's3cs.records.v1.CacheRecords',
    'grpc.health.v1.Health',
  ];

  it('lists every service the daemon serves', async () => {
    expect(await listedServices('v1')).toEqual(expect.arrayContaining(served));
  });

  it('answers the older v1alpha version the same', async () => {
    expect(await listedServices('v1alpha')).toEqual(expect.arrayContaining(served));
  });
});

describe('metrics over HTTPS', () => {
  /** GET over TLS with the test CA; resolves with the status, rejects when the handshake fails. */
  const get = (url: string, pki: ReturnType<typeof makePki>, withClientCert: boolean) =>
    new Promise<number>((resolve, reject) => {
      const req = httpsGet(
        url,
        {
          ca: readFileSync(pki.ca),
          ...(withClientCert ? { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } : {}),
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
    });

  it('are served with the daemon\'s TLS files, and only to a client certificate the CA signed when --tls-client-ca is given', async () => {
    const pki = makePki(tempDir('s3cs-metrics-pki-'));
    const tlsSocket = join(tempDir('s3cs-metrics-tls-'), 'content.sock');
    const running = await serve(
      ['--address', `unix://${tlsSocket}`, '--root', join(dir, 'tls-root'), '--metrics-address', '127.0.0.1:0', '--tls-cert', pki.cert, '--tls-key', pki.key, '--tls-client-ca', pki.ca],
      children,
    );
    const url = running.lines.find((l) => l.msg === 'serving')!.metrics as string;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(await get(url, pki, true)).toBe(200);
    await expect(get(url, pki, false)).rejects.toThrow();
  });
});
