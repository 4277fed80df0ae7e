// npm run bench: the daemon against raw @aws-sdk/client-s3 on the same S3 server, in the same run.
//
// Starts Swift's s3api (scripts/swift-s3.sh) unless S3_TEST_ENDPOINT names a store, starts the
// daemon as its own process, drives it from this process over the Content API, and prints one
// row per case: the median of RUNS runs of each side, their ratio, and the target. Writes the
// figures to bench/results/<time>.json. BENCH_SIZE_MIB (default 512) scales the large cases.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata } from '@grpc/grpc-js';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { protos } from '../dist/grpc/proto.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 512) * MiB;
const PART = 8 * MiB;
const PARALLEL = 4;
// BENCH_CASES=ingest,read,seqread,small,rss,ctr runs only those (for working on one of them)
const CASES = new Set((process.env.BENCH_CASES ?? 'ingest,read,seqread,small,rss,ctr').split(','));
const want = (name) => CASES.has(name);
// BENCH_PROFILE=1 runs each daemon under node --cpu-prof and prints where its CPU went
const PROFILE = Boolean(process.env.BENCH_PROFILE);
const work = mkdtempSync(join(tmpdir(), 's3cs-bench-'));
const STARTED = new Date().toISOString().replace(/[:.]/g, '-');
const cleanups = [];
const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

// --- S3 and the daemon ------------------------------------------------------------------------------

function startS3() {
  if (process.env.S3_TEST_ENDPOINT) {
    return { endpoint: process.env.S3_TEST_ENDPOINT, accessKey: process.env.S3_TEST_ACCESS_KEY, secretKey: process.env.S3_TEST_SECRET_KEY, region: process.env.S3_TEST_REGION ?? 'us-east-1' };
  }
  const dir = join(work, 'swift');
  const out = execFileSync('bash', [join(ROOT, 'scripts/swift-s3.sh'), 'start', dir], { encoding: 'utf8' });
  cleanups.push(() => execFileSync('bash', [join(ROOT, 'scripts/swift-s3.sh'), 'stop', dir]));
  const v = Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s)));
  // Swift's servers and memcached, so each case can say how much CPU the S3 side took
  const pids = readdirSync(join(dir, 'run')).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(dir, 'run', f), 'utf8')));
  return { endpoint: v.S3_TEST_ENDPOINT, accessKey: v.S3_TEST_ACCESS_KEY, secretKey: v.S3_TEST_SECRET_KEY, region: v.S3_TEST_REGION, pids };
}

// --- CPU accounting: every case shares the machine's cores among client, daemon and S3 -------------

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
/** CPU seconds (user + system, all threads) a process has used so far; NaN once it is gone. */
function processCpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
/** The daemon whose CPU the current case counts (the raw side leaves it idle). */
let meteredDaemon;
function cpuNow() {
  const own = process.cpuUsage();
  return {
    client: (own.user + own.system) / 1e6,
    daemon: meteredDaemon ? processCpuSeconds(meteredDaemon.child.pid) : 0,
    s3: s3.pids ? s3.pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0) : NaN,
  };
}

/** Stops what the bench started and removes what it wrote, also when a case fails. */
async function cleanUp() {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
process.on('uncaughtException', (err) => {
  log(`bench failed: ${err?.stack ?? err}`);
  void cleanUp().finally(() => process.exit(1));
});

// The SDK's notice that its 2027 releases need Node 22 says nothing about this run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const s3 = startS3();
const raw = new S3Client({
  region: s3.region,
  endpoint: s3.endpoint,
  forcePathStyle: true,
  credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const bucket = `s3cs-bench-${randomBytes(4).toString('hex')}`;
await raw.send(new CreateBucketCommand({ Bucket: bucket }));
// A store the bench did not start keeps what is written to it: take the GBs away again.
if (process.env.S3_TEST_ENDPOINT) cleanups.push(emptyBucket);

async function emptyBucket() {
  let token;
  do {
    const out = await raw.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    await pool(out.Contents?.length ?? 0, 16, (k) => raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: out.Contents[k].Key })));
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  await raw.send(new DeleteBucketCommand({ Bucket: bucket }));
}

async function startDaemon(name, extraArgs = []) {
  const socket = join(work, `${name}.sock`);
  const profileDir = join(ROOT, 'bench/results', `profile-${STARTED}-${name}`);
  const nodeArgs = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist/cli.js'), 'serve', '--address', `unix://${socket}`, '--bucket', bucket,
    '--endpoint-url', s3.endpoint, '--region', s3.region, '--part-size', `${PART}`, '--upload-parallelism', `${PARALLEL}`, '--log-level', 'warn', ...extraArgs], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 300; i++) {
    try {
      execFileSync('test', ['-S', socket]);
      break;
    } catch {
      await sleep(100);
    }
  }
  const Content = protos().content.containerd.services.content.v1.Content;
  const client = new Content(`unix://${socket}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 * MiB, 'grpc.max_send_message_length': 16 * MiB });
  let profiled = false;
  const stop = async () => {
    client.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.exitCode !== null ? r() : child.on('exit', r));
    if (PROFILE && !profiled) printProfiles(name, profileDir);
    profiled = true;
  };
  cleanups.push(stop);
  return { child, client, socket, stop, peakRssMiB: () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024 };
}

/** Self time by function, the busiest first, for each thread's profile (main thread, hash workers). */
function printProfiles(name, dir) {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map();
    let total = 0;
    p.samples.forEach((id, i) => {
      const { functionName, url, lineNumber } = byId.get(id).callFrame;
      const where = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}${url ? `:${lineNumber + 1}` : ''}`;
      const dt = p.timeDeltas[i] ?? 0;
      total += dt;
      self.set(where, (self.get(where) ?? 0) + dt);
    });
    // Shares of the time the thread was busy: idle time says only how long the daemon lived.
    const idle = self.get('(idle) ') ?? 0;
    self.delete('(idle) ');
    const busy = total - idle;
    log(`  profile of daemon "${name}", ${file}: busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(1)} s sampled; share of busy time:`);
    for (const [where, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) log(`    ${((100 * t) / busy).toFixed(1).padStart(5)}%  ${where}`);
  }
}

// --- Content API client, as containerd's own client drives it -------------------------------------

const md = () => {
  const m = new Metadata();
  m.set('containerd-namespace', 'bench');
  return m;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const unary = (client, method, req) => new Promise((res, rej) => client[method](req, md(), (e, v) => (e ? rej(e) : res(v))));

/** Writes a blob like containerd's remote writer: STAT, one WRITE per chunk awaiting its answer, COMMIT. */
async function ingest(client, ref, chunks, total, expected) {
  const stream = client.Write(md());
  const answers = [];
  let waiter;
  let failure;
  stream.on('data', (r) => (waiter ? (waiter(r), (waiter = undefined)) : answers.push(r)));
  stream.on('error', (e) => {
    failure = e;
    waiter?.(undefined);
  });
  const send = (req) => new Promise((resolve, reject) => {
    if (failure) return reject(failure);
    waiter = (r) => (r ? resolve(r) : reject(failure));
    stream.write(req);
  });
  await send({ action: 'STAT', ref, total, expected });
  let offset = 0;
  for (const data of chunks()) {
    await send({ action: 'WRITE', ref, offset, data });
    offset += data.length;
  }
  const commitSent = performance.now();
  const done = await send({ action: 'COMMIT', ref, total, offset, expected });
  const commitMs = performance.now() - commitSent;
  stream.end();
  if (done.digest !== expected) throw new Error(`committed ${done.digest}, expected ${expected}`);
  return { commitMs };
}

function readAll(client, digest, offset = 0, size = 0) {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const s = client.Read({ digest, offset, size }, md());
    s.on('data', (r) => (bytes += r.data.length));
    s.on('error', reject);
    s.on('end', () => resolve(bytes));
  });
}

// --- data ----------------------------------------------------------------------------------------------

const base = randomBytes(64 * MiB);
/** A deterministic blob of `size` bytes, distinct per seed, produced in 1 MiB chunks without holding it whole. */
function blob(seed, size) {
  const chunks = function* () {
    for (let off = 0; off < size; off += MiB) {
      const n = Math.min(MiB, size - off);
      const start = (off + seed * 4099) % (base.length - MiB);
      const chunk = Buffer.from(base.subarray(start, start + n));
      chunk.writeUInt32BE(seed, 0);
      chunk.writeUInt32BE(off / MiB, 4);
      yield chunk;
    }
  };
  const h = createHash('sha256');
  for (const c of chunks()) h.update(c);
  return { chunks, size, digest: `sha256:${h.digest('hex')}` };
}

async function rawUpload(key, b) {
  const { Readable } = await import('node:stream');
  await new Upload({ client: raw, params: { Bucket: bucket, Key: key, Body: Readable.from(b.chunks()) }, partSize: PART, queueSize: PARALLEL }).done();
}

/** Uploads `count` copies of `part` as one multipart upload and times only its completion. */
async function rawCompleteMs(key, part, count) {
  const { UploadId } = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const parts = [];
  await pool(count, PARALLEL, async (k) => {
    const out = await raw.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: k + 1, Body: part }));
    parts[k] = { PartNumber: k + 1, ETag: out.ETag };
  });
  return (await timed(() => raw.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } })))).ms;
}

async function rawGet(key) {
  const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  let bytes = 0;
  for await (const c of out.Body) bytes += c.length;
  return bytes;
}

async function pool(n, concurrency, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Runs fn, timing it and counting the CPU seconds each process used meanwhile. */
async function timed(fn) {
  const before = cpuNow();
  const t = performance.now();
  const extra = await fn();
  const ms = performance.now() - t;
  const after = cpuNow();
  const cpu = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
  return { ms, extra, cpu };
}
/** Median CPU seconds per process over runs, and the median wall time, for one side of a case. */
function cpuSummary(runs) {
  const pick = (f) => median(runs.map(f));
  return { wallS: pick((r) => r.ms / 1000), client: pick((r) => r.cpu.client), daemon: pick((r) => r.cpu.daemon), s3: pick((r) => r.cpu.s3) };
}

// --- cases -----------------------------------------------------------------------------------------------

const rows = [];
/**
 * `meets` is undefined for a row that only reports (no target). `cpu`, when given: the timed runs
 * of each side, summarised as CPU seconds per process and run.
 */
function row(name, unit, daemon, rawValue, target, meets, note = '', cpu) {
  const cpuSeconds = cpu && { daemonSide: cpuSummary(cpu.daemon), rawSide: cpuSummary(cpu.raw) };
  rows.push({ case: name, unit, daemon, raw: rawValue, ratio: rawValue ? daemon / rawValue : undefined, target, met: meets, note, ...(cpuSeconds ? { cpuSeconds } : {}) });
  const verdict = meets === undefined ? target : `${target}: ${meets ? 'met' : 'NOT met'}`;
  log(`  ${name}: daemon ${daemon.toFixed(1)} ${unit}${rawValue ? `, raw ${rawValue.toFixed(1)} ${unit}, ratio ${(daemon / rawValue).toFixed(2)}` : ''} (${verdict})`);
  if (cpuSeconds) {
    const side = (c, withDaemon) => `client ${c.client.toFixed(2)}${withDaemon ? `, daemon ${c.daemon.toFixed(2)}` : ''}, S3 ${Number.isNaN(c.s3) ? '?' : c.s3.toFixed(2)} in ${c.wallS.toFixed(2)} s`;
    log(`    CPU seconds a run (${cpus().length} cores): through the daemon ${side(cpuSeconds.daemonSide, true)}; raw ${side(cpuSeconds.rawSide, false)}`);
  }
}
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);

log(`bench: ${RUNS} runs a case, large blobs ${SIZE / MiB} MiB, parts ${PART / MiB} MiB x ${PARALLEL}, S3 at ${s3.endpoint}`);
let shared;
/** The daemon a case drives: one for all cases, or under BENCH_PROFILE its own, so its profile is that case's alone. */
async function caseDaemon(name) {
  const daemon = PROFILE ? await startDaemon(name) : (shared ??= await startDaemon('main'));
  meteredDaemon = daemon;
  return daemon;
}
async function doneWith(daemon) {
  meteredDaemon = undefined;
  if (daemon !== shared) await daemon.stop();
}

if (want('ingest')) {
  log('ingest, large, expected digest');
  const d = await caseDaemon('ingest');
  const dr = [], rr = [], commits = [], partMs = [], completeMs = [];
  for (let i = 0; i < RUNS; i++) {
    const b = blob(100 + i, SIZE);
    const r = await timed(() => ingest(d.client, `big-${i}`, b.chunks, SIZE, b.digest));
    dr.push(r);
    commits.push(r.extra.commitMs);
    const rb = blob(200 + i, SIZE);
    rr.push(await timed(() => rawUpload(`raw/big-${i}`, rb)));
    const part = randomBytes(PART);
    partMs.push((await timed(() => raw.send(new PutObjectCommand({ Bucket: bucket, Key: `raw/part-${i}`, Body: part })))).ms);
    completeMs.push(await rawCompleteMs(`raw/complete-${i}`, part, SIZE / PART));
  }
  const dm = dr.map((r) => mbps(SIZE, r.ms)), rm = rr.map((r) => mbps(SIZE, r.ms));
  row(`ingest ${SIZE / MiB} MiB with expected digest vs multipart upload`, 'MB/s', median(dm), median(rm), '>= 0.8x', median(dm) >= 0.8 * median(rm), '', { daemon: dr, raw: rr });
  row('commit latency after the last byte', 'ms', median(commits), median(partMs), '<= 2x one part upload', median(commits) <= 2 * median(partMs), 'raw = time to upload one part');
  row(`raw CompleteMultipartUpload of ${SIZE / PART} parts alone`, 'ms', median(completeMs), median(partMs), 'reported', undefined, 'the floor under a commit on this server; ratio is against one part upload');
  await doneWith(d);

  log('ingest, large, expected digest, --no-crash-resume');
  const fast = await startDaemon('no-crash-resume', ['--no-crash-resume']);
  meteredDaemon = fast;
  const fr = [], frr = [];
  for (let i = 0; i < RUNS; i++) {
    const b = blob(150 + i, SIZE);
    fr.push(await timed(() => ingest(fast.client, `fast-${i}`, b.chunks, SIZE, b.digest)));
    const rb = blob(250 + i, SIZE);
    frr.push(await timed(() => rawUpload(`raw/fast-${i}`, rb)));
  }
  meteredDaemon = undefined;
  await fast.stop();
  const fm = fr.map((r) => mbps(SIZE, r.ms)), frm = frr.map((r) => mbps(SIZE, r.ms));
  row(`ingest ${SIZE / MiB} MiB as above, daemon with --no-crash-resume`, 'MB/s', median(fm), median(frm), 'reported', undefined, 'Node\'s own SHA-256 instead of the saveable one', { daemon: fr, raw: frr });
}

const readBlob = blob(300, SIZE);
if (want('read') || want('seqread')) {
  const d = await caseDaemon('read-source');
  await ingest(d.client, 'read-source', readBlob.chunks, SIZE, readBlob.digest);
  await rawUpload('raw/read-source', readBlob);
  await doneWith(d);
}
if (want('read')) {
  log('read, one Read');
  const d = await caseDaemon('read');
  const dr = [], rr = [];
  for (let i = 0; i < RUNS; i++) {
    dr.push(await timed(() => readAll(d.client, readBlob.digest)));
    rr.push(await timed(() => rawGet('raw/read-source')));
  }
  const dm = dr.map((r) => mbps(SIZE, r.ms)), rm = rr.map((r) => mbps(SIZE, r.ms));
  row(`read ${SIZE / MiB} MiB in one Read vs GetObject`, 'MB/s', median(dm), median(rm), '>= 0.85x', median(dm) >= 0.85 * median(rm), '', { daemon: dr, raw: rr });
  await doneWith(d);
}
if (want('seqread')) {
  log('read, 1 MiB sequential Reads');
  const d = await caseDaemon('seqread');
  const dr = [], rr = [];
  for (let i = 0; i < RUNS; i++) {
    dr.push(await timed(async () => {
      for (let off = 0; off < SIZE; off += MiB) await readAll(d.client, readBlob.digest, off, MiB);
    }));
    rr.push(await timed(() => rawGet('raw/read-source')));
  }
  const dm = dr.map((r) => mbps(SIZE, r.ms)), rm = rr.map((r) => mbps(SIZE, r.ms));
  row(`read ${SIZE / MiB} MiB as 1 MiB sequential Reads vs GetObject`, 'MB/s', median(dm), median(rm), '>= 0.7x', median(dm) >= 0.7 * median(rm), '', { daemon: dr, raw: rr });
  await doneWith(d);
}
if (want('small')) {
  log('small ingests');
  const d = await caseDaemon('small');
  const N = Number(process.env.BENCH_SMALL ?? 2000);
  const dr = [], rr = [];
  const digests = [];
  for (let i = 0; i < RUNS; i++) {
    const items = Array.from({ length: N }, () => randomBytes(4096));
    dr.push(await timed(() => pool(N, 16, async (k) => {
      const data = items[k];
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      digests.push(digest);
      await ingest(d.client, `small-${i}-${k}`, () => [data], data.length, digest);
    })));
    const rawItems = Array.from({ length: N }, () => randomBytes(4096));
    rr.push(await timed(() => pool(N, 16, (k) => raw.send(new PutObjectCommand({ Bucket: bucket, Key: `raw/small-${i}-${k}`, Body: rawItems[k] })))));
  }
  const dm = dr.map((r) => N / (r.ms / 1000)), rm = rr.map((r) => N / (r.ms / 1000));
  row(`${N} x 4 KiB ingests at concurrency 16 vs PutObject`, 'ops/s', median(dm), median(rm), '>= 0.7x', median(dm) >= 0.7 * median(rm), '', { daemon: dr, raw: rr });

  log('Info, second pass');
  const known = digests.slice(0, N);
  await pool(known.length, 16, (k) => unary(d.client, 'Info', { digest: known[k] }));
  const dir = [], rir = [];
  for (let i = 0; i < RUNS; i++) {
    dir.push(await timed(() => pool(known.length, 16, (k) => unary(d.client, 'Info', { digest: known[k] }))));
    rir.push(await timed(() => pool(known.length, 16, (k) => raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `blobs/${known[k]}` })))));
  }
  const di = dir.map((r) => known.length / (r.ms / 1000)), ri = rir.map((r) => known.length / (r.ms / 1000));
  row(`${known.length} Info on existing blobs (second pass) vs HeadObject`, 'ops/s', median(di), median(ri), '>= 5x', median(di) >= 5 * median(ri), '', { daemon: dir, raw: rir });
  await doneWith(d);
}
await shared?.stop();

if (want('rss')) {
  log('peak RSS: one large ingest while 8 reads run');
  const fresh = await startDaemon('rss');
  const readSize = Math.min(256 * MiB, SIZE);
  const source = blob(400, readSize);
  await ingest(fresh.client, 'rss-read', source.chunks, readSize, source.digest);
  const bigSize = 4 * SIZE;
  const big = blob(401, bigSize);
  await Promise.all([
    ingest(fresh.client, 'rss-big', big.chunks, bigSize, big.digest),
    ...Array.from({ length: 8 }, () => readAll(fresh.client, source.digest)),
  ]);
  const peak = fresh.peakRssMiB();
  row(`daemon peak RSS: ${bigSize / MiB} MiB ingest + 8 reads of ${readSize / MiB} MiB`, 'MiB', peak, undefined, '<= 160 MiB', peak <= 160);
  await fresh.stop();
}

if (want('ctr')) await ctrVersusContainerd();

async function ctrVersusContainerd() {
  const ctrOk = spawnSync('ctr', ['--version']).status === 0 && spawnSync('containerd', ['--version']).status === 0;
  if (!ctrOk) {
    log('ctr/containerd not installed: skipping the ctr rows (scripts/test-deps.sh installs them)');
    return;
  }
  log('ctr ingest/get: daemon vs a local containerd');
  const size = Math.min(256 * MiB, SIZE);
  const file = join(work, 'ctr.bin');
  const cd = join(work, 'containerd');
  mkdirSync(cd, { recursive: true });
  const sock = join(cd, 'containerd.sock');
  writeFileSync(join(cd, 'config.toml'), `version = 2\nroot = "${cd}/root"\nstate = "${cd}/state"\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n[debug]\n  level = "error"\n`);
  const containerd = spawn('containerd', ['--config', join(cd, 'config.toml')], { stdio: 'ignore' });
  cleanups.push(() => containerd.kill('SIGTERM'));
  for (let i = 0; i < 100 && spawnSync('ctr', ['--address', sock, 'version']).status !== 0; i++) await sleep(100);
  const daemon = await startDaemon('ctr');
  const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };
  const ctrTime = (address, args, stdin) => {
    const t = performance.now();
    const r = spawnSync('sh', ['-c', `ctr --address "$0" -n bench content "$@" ${stdin ? `< "${stdin}"` : '> /dev/null'}`, address, ...args], { env });
    if (r.status !== 0) throw new Error(`ctr ${args.join(' ')}: ${r.stderr}`);
    return performance.now() - t;
  };
  const di = [], ci = [], dg = [], cg = [];
  for (let i = 0; i < RUNS; i++) {
    // new bytes each run: a blob stored before would answer "already exists" at once (and a
    // Delete through the daemon drops a hold, not the bytes)
    const b = blob(500 + i, size);
    writeFileSync(file, Buffer.concat([...b.chunks()]));
    di.push(ctrTime(daemon.socket, ['ingest', '--expected-digest', b.digest, `ctr-${i}`], file));
    ci.push(ctrTime(sock, ['ingest', '--expected-digest', b.digest, `ctr-${i}`], file));
    dg.push(ctrTime(daemon.socket, ['get', b.digest]));
    cg.push(ctrTime(sock, ['get', b.digest]));
  }
  row(`ctr content ingest ${size / MiB} MiB: time, daemon vs containerd`, 'ms', median(di), median(ci), 'reported', undefined, 'ratio is daemon/containerd time');
  row(`ctr content get ${size / MiB} MiB: time, daemon vs containerd`, 'ms', median(dg), median(cg), 'reported', undefined, 'ratio is daemon/containerd time');
  await daemon.stop();
}

// --- report ----------------------------------------------------------------------------------------------

const result = {
  at: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version },
  s3: s3.endpoint,
  runs: RUNS,
  sizeMiB: SIZE / MiB,
  rows,
};
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
const out = join(ROOT, 'bench/results', `${result.at.replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify(result, null, 2));
const fmt = (v) => (v === undefined ? '' : v >= 100 ? v.toFixed(0) : v.toFixed(2));
console.log('\n| case | daemon | raw | ratio | target | met |\n|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.case} | ${fmt(r.daemon)} ${r.unit} | ${r.raw === undefined ? '' : `${fmt(r.raw)} ${r.unit}`} | ${fmt(r.ratio)} | ${r.target} | ${r.met === undefined ? '' : r.met ? 'yes' : 'NO'} |`);
console.log(`\n${result.machine.cpus} x ${result.machine.cpu}, ${result.machine.memoryGiB} GiB, Node ${process.version}; results in ${out}`);
await cleanUp();
process.exit(0);
