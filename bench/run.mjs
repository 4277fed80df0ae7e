// npm run bench: the daemon against raw @aws-sdk/client-s3 on the same S3 server, in the same run.
//
// For each S3 delay in BENCH_DELAYS (default 0,20 ms), starts a Swift s3api of its own whose
// proxy holds every request back that long (scripts/swift-s3.sh; or uses S3_TEST_ENDPOINT once,
// as it is), starts the daemon as its own process, drives it from this process over the Content
// API, and prints one row per case: the median of BENCH_RUNS runs of each side, their ratio, the
// target, and the S3 round trips one operation costs on each side. Writes the figures to
// bench/results/<time>.json. The knobs are in bench/config.mjs.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { DELAYS, MiB, PARALLEL, PART, PROFILE, RUNS, SIZE, planFor, want } from './config.mjs';
import { median, meter } from './cpu.mjs';
import { startDaemon } from './daemon.mjs';
import { finish, row } from './report.mjs';
import { rawSide } from './raw.mjs';
import { externalS3, startSwift } from './swift.mjs';
import { ctrCases } from './cases/ctr.mjs';
import { ingestCases } from './cases/ingest.mjs';
import { readCases } from './cases/read.mjs';
import { rssCases } from './cases/rss.mjs';
import { smallCases } from './cases/small.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const work = mkdtempSync(join(tmpdir(), 's3cs-bench-'));
const started = new Date().toISOString().replace(/[:.]/g, '-');
const cleanups = [];

/** Stops what the bench started and removes what it wrote, also when a case fails. */
async function cleanUp() {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => undefined);
}
// A case that fails must not leave Swift, containerd or a daemon running.
let failing;
async function exitAfterCleanUp(err) {
  log(`bench failed: ${err?.stack ?? err}`);
  // a second failure while cleaning up waits for the first clean-up instead of exiting under it
  failing ??= cleanUp().then(() => {
    rmSync(work, { recursive: true, force: true });
    process.exit(1);
  });
  await failing;
}
process.on('uncaughtException', exitAfterCleanUp);
process.on('unhandledRejection', exitAfterCleanUp);

// The SDK's notice that its 2027 releases need Node 22 says nothing about this run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const mib = (bytes) => `${bytes / MiB} MiB`;

/** Median time of one request that S3 answers at once (a HEAD of the bucket): what a round trip costs. */
async function roundTripMs(raw) {
  const times = [];
  for (let i = 0; i < 9; i++) {
    const t = performance.now();
    await raw.send(new HeadBucketCommand({ Bucket: raw.bucket }));
    times.push(performance.now() - t);
  }
  return median(times);
}

/** Every wanted case against one S3 server, whose requests take `delayMs` more (undefined: as they are). */
async function pass(delayMs) {
  const dir = join(work, `pass-${delayMs ?? 'external'}`);
  const s3 = externalS3() ?? startSwift(join(dir, 'swift'), delayMs);
  const stopS3 = async () => s3.stop();
  cleanups.push(stopS3);
  meter.s3Pids = s3.pids;
  const bucket = `s3cs-bench-${randomBytes(4).toString('hex')}`;
  const raw = rawSide(s3, bucket);
  await raw.createBucket();
  // A store the bench did not start keeps what is written to it: take the GBs away again.
  const emptyBucket = () => raw.emptyAndDelete();
  if (s3.external) cleanups.push(emptyBucket);
  const delay = s3.external ? 'as is' : `${delayMs} ms`;
  const plan = planFor(delayMs ?? 0);
  log(`\n== S3 delay ${delay}: ${s3.endpoint}, one request ${(await roundTripMs(raw)).toFixed(1)} ms (median of 9 HeadBucket)`);

  const env = { s3, bucket, work: dir, started: `${started}-${delayMs ?? 'ext'}`, cleanups };
  let shared;
  const p = {
    plan,
    raw,
    work: dir,
    cleanups,
    mib,
    row: (fields) => row({ delay, ...fields }),
    startDaemon: (name, args, opts) => startDaemon(env, name, args, opts),
    /** The daemon a case drives: one for the pass, or its own with `args` or under BENCH_PROFILE (so its profile is that case's alone). */
    async caseDaemon(name, args) {
      const daemon = PROFILE || args ? await startDaemon(env, name, args) : (shared ??= await startDaemon(env, 'main'));
      meter.daemonPid = daemon.child.pid;
      return daemon;
    },
    async doneWith(daemon) {
      meter.daemonPid = undefined;
      if (daemon !== shared) await daemon.stop();
    },
  };
  // how long each group took, to keep the bench's time in view
  const group = async (cases, fn) => {
    const t = performance.now();
    await fn(p);
    log(`  (${cases}: ${((performance.now() - t) / 1000).toFixed(0)} s)`);
  };
  if (want('ingest')) await group('ingest', ingestCases);
  if (want('read') || want('seqread') || want('proxyread')) await group('reads', readCases);
  if (want('small')) await group('small', smallCases);
  await shared?.stop();
  if (want('rss')) await group('rss', rssCases);
  if (want('ctr') || want('tier')) await group('ctr', ctrCases);

  if (s3.external) {
    cleanups.splice(cleanups.indexOf(emptyBucket), 1);
    await emptyBucket();
  }
  cleanups.splice(cleanups.indexOf(stopS3), 1);
  await stopS3();
  meter.s3Pids = undefined;
  return { delay, endpoint: s3.endpoint };
}

const delays = externalS3() ? [undefined] : DELAYS;
if (externalS3() && DELAYS.some((d) => d !== 0)) log('S3_TEST_ENDPOINT is set: one pass against it as it is (BENCH_DELAYS applies only to the bench\'s own Swift)');
log(`bench: ${RUNS} runs a case, large blobs ${mib(SIZE)}, parts ${mib(PART)} x ${PARALLEL}, S3 delays ${delays.map((d) => d ?? 'as is').join(', ')}`);
const t0 = performance.now();
const passes = [];
try {
  for (const d of delays) passes.push(await pass(d));
} catch (err) {
  await exitAfterCleanUp(err);
}
log(`\nbench took ${((performance.now() - t0) / 60000).toFixed(1)} min`);
finish({ passes, runs: RUNS, sizeMiB: SIZE / MiB });
await cleanUp();
rmSync(work, { recursive: true, force: true });
process.exit(0);
