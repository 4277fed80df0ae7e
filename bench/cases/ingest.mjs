// Large ingests: throughput against a lib-storage multipart upload, and what COMMIT costs after
// the client's last byte.
import { randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { PART, RUNS } from '../config.mjs';
import { ingest } from '../client.mjs';
import { median, timed } from '../cpu.mjs';
import { blob } from '../data.mjs';
import { countsSince, endedAfter } from '../requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);

/**
 * One ingest through the daemon, timed, with its S3 requests counted from the daemon's metrics:
 * all of them, and those from the last WRITE's answer until COMMIT's (the scrape there happens
 * before COMMIT is sent: its time counts in the commit's, against the daemon; requests that end
 * while it runs are counted before it, not in the commit's).
 */
async function countedIngest(d, ref, b) {
  const before = await d.s3Requests();
  let atLastByte;
  const run = await timed(() => ingest(d.client, ref, b.chunks, b.size, b.digest, { beforeCommit: async () => (atLastByte = await d.s3Requests()) }));
  const after = await d.s3Requests();
  return { run, whole: countsSince(before, after), tail: countsSince(atLastByte, after) };
}

/**
 * One multipart upload by the raw client, timed, with its requests: all, and those that ended
 * after the last part started (the client's last byte leaving it, as the daemon's last WRITE).
 * `tailMs`: from the last part's start until CompleteMultipartUpload answered (undefined for a
 * blob lib-storage sends in one PutObject).
 */
async function countedUpload(raw, key, b) {
  const { result: run, counts, requests } = await raw.requests.record(() => timed(() => raw.upload(key, b)));
  const parts = requests.filter((r) => r.operation === 'UploadPart');
  const completions = requests.filter((r) => r.operation === 'CompleteMultipartUpload');
  if (parts.length === 0 || completions.length === 0) return { run, whole: counts, tail: counts, tailMs: undefined };
  const lastPart = Math.max(...parts.map((r) => r.startedAt));
  const completed = Math.max(...completions.map((r) => r.endedAt));
  return { run, whole: counts, tail: endedAfter(requests, lastPart), tailMs: completed - lastPart };
}

export async function ingestCases(p) {
  const { size } = p.plan;
  log('ingest, large, expected digest');
  const d = await p.caseDaemon('ingest');
  const dr = [], rr = [], commits = [], rawTails = [], partMs = [], completeMs = [];
  let daemonCounts, rawCounts;
  for (let i = 0; i < RUNS; i++) {
    const b = blob(100 + i, size);
    daemonCounts = await countedIngest(d, `big-${i}`, b);
    dr.push(daemonCounts.run);
    commits.push(daemonCounts.run.extra.commitMs);
    rawCounts = await countedUpload(p.raw, `raw/big-${i}`, blob(200 + i, size));
    rr.push(rawCounts.run);
    if (rawCounts.tailMs !== undefined) rawTails.push(rawCounts.tailMs);
    const part = randomBytes(PART);
    partMs.push((await timed(() => p.raw.send(new PutObjectCommand({ Bucket: p.raw.bucket, Key: `raw/part-${i}`, Body: part })))).ms);
    completeMs.push(await p.raw.completeMs(`raw/complete-${i}`, part, Math.max(1, Math.round(size / PART))));
  }
  const dm = dr.map((r) => mbps(size, r.ms)), rm = rr.map((r) => mbps(size, r.ms));
  p.row({
    name: `ingest ${p.mib(size)} with expected digest vs multipart upload (8 MiB × 4)`, unit: 'MB/s', daemon: median(dm), raw: median(rm),
    target: '>= 0.8x', met: median(dm) >= 0.8 * median(rm), cpu: { daemon: dr, raw: rr },
    trips: { what: 'one whole ingest', daemon: daemonCounts.whole, raw: rawCounts.whole },
  });
  // A commit may wait for the last part and the completion, no more (the words): one part
  // upload and one completion of as many parts, each alone, in the same runs. The parts still in
  // flight at the last byte come on top, which the target allows for; a round trip more after the
  // completion adds about 0.1 at 20 ms, within the runs' spread, so the row tells two, not one.
  const floor = median(partMs) + median(completeMs);
  p.row({
    name: 'commit latency after the last byte vs one part upload and the completion, each alone', unit: 'ms', daemon: median(commits), raw: floor,
    target: '<= 1.25x', met: median(commits) <= 1.25 * floor, note: 'raw = one 8 MiB PutObject alone (a part\'s upload) + CompleteMultipartUpload of as many parts alone',
    trips: { what: 'from the last byte until COMMIT answered; raw: of the multipart upload, after its last part started', daemon: daemonCounts.tail, raw: rawCounts.tail },
  });
  if (rawTails.length > 0) {
    p.row({
      name: 'commit latency after the last byte vs the raw upload\'s own, from its last part\'s start', unit: 'ms', daemon: median(commits), raw: median(rawTails),
      target: 'reported', note: 'raw = from its last UploadPart\'s start (others still in flight) until CompleteMultipartUpload answered',
    });
  }
  p.row({
    name: `raw CompleteMultipartUpload of ${Math.round(size / PART)} parts alone vs one part upload`, unit: 'ms', daemon: median(completeMs), raw: median(partMs),
    target: 'reported', note: 'the floor under a commit on this server; ratio is against one part upload',
  });
  await p.doneWith(d);

  log('ingest, large, expected digest, --no-crash-resume');
  const fast = await p.caseDaemon('no-crash-resume', ['--no-crash-resume']);
  const fr = [], frr = [];
  for (let i = 0; i < RUNS; i++) {
    daemonCounts = await countedIngest(fast, `fast-${i}`, blob(150 + i, size));
    fr.push(daemonCounts.run);
    rawCounts = await countedUpload(p.raw, `raw/fast-${i}`, blob(250 + i, size));
    frr.push(rawCounts.run);
  }
  await p.doneWith(fast);
  const fm = fr.map((r) => mbps(size, r.ms)), frm = frr.map((r) => mbps(size, r.ms));
  p.row({
    name: `ingest ${p.mib(size)} as above, daemon with --no-crash-resume`, unit: 'MB/s', daemon: median(fm), raw: median(frm),
    target: 'reported', note: 'Node\'s own SHA-256 instead of the saveable one', cpu: { daemon: fr, raw: frr },
    trips: { what: 'one whole ingest', daemon: daemonCounts.whole, raw: rawCounts.whole },
  });
}
