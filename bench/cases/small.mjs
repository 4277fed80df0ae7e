// Many small ingests at once against PutObject, and Info on held blobs against HeadObject.
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { RUNS } from '../config.mjs';
import { ingest, unary } from '../client.mjs';
import { median, timed } from '../cpu.mjs';
import { pool, sha256 } from '../data.mjs';
import { daemonAlone, rawAlone } from '../requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const SMALL_SIZE = 4096;

export async function smallCases(p) {
  const { small: n, smallConcurrency: c } = p.plan;
  log(`small ingests: ${n} at concurrency ${c}`);
  const d = await p.caseDaemon('small');
  const put = (key, body) => p.raw.send(new PutObjectCommand({ Bucket: p.raw.bucket, Key: key, Body: body }));
  const dr = [], rr = [];
  const held = [];
  for (let i = 0; i < RUNS; i++) {
    const items = Array.from({ length: n }, () => randomBytes(SMALL_SIZE));
    dr.push(await timed(() => pool(n, c, async (k) => {
      const digest = sha256(items[k]);
      await ingest(d.client, `small-${i}-${k}`, () => [items[k]], SMALL_SIZE, digest);
      held.push(digest);
    })));
    const rawItems = Array.from({ length: n }, () => randomBytes(SMALL_SIZE));
    rr.push(await timed(() => pool(n, c, (k) => put(`raw/small-${i}-${k}`, rawItems[k]))));
  }
  // the critical path of one more, alone, once the daemon's caches are as the runs left them
  const one = randomBytes(SMALL_SIZE);
  const daemonOne = await daemonAlone(d, () => ingest(d.client, 'small-alone', () => [one], SMALL_SIZE, sha256(one)));
  const rawOne = await rawAlone(p.raw, () => put('raw/small-alone', randomBytes(SMALL_SIZE)));
  const dm = dr.map((r) => n / (r.ms / 1000)), rm = rr.map((r) => n / (r.ms / 1000));
  p.row({
    name: `${n} × 4 KiB ingests at concurrency ${c} vs PutObject`, unit: 'ops/s', daemon: median(dm), raw: median(rm),
    target: '>= 0.5x', met: median(dm) >= 0.5 * median(rm), cpu: { daemon: dr, raw: rr },
    trips: { what: 'one ingest of a new blob', daemon: daemonOne.counts, later: daemonOne.later, raw: rawOne.counts, aloneMs: { daemon: daemonOne.ms, raw: rawOne.ms } },
  });

  log('Info, first and second pass');
  // The daemon keeps what it read or wrote of a hold for 30 s: after that long, the holds the
  // ingests wrote are read from the bucket again. Each run takes the blobs of one ingest run, a
  // first pass reading them from the bucket, then the timed second pass straight after it (after
  // a raw run, or a first pass that took longer, the blobs read first would be read again).
  await new Promise((resolve) => setTimeout(resolve, 31_000));
  let known = held.slice(0, n);
  const info = (k) => unary(d.client, 'Info', { digest: known[k] });
  const head = (k) => p.raw.send(new HeadObjectCommand({ Bucket: p.raw.bucket, Key: `blobs/${known[k]}` }));
  const first = [], dir = [], rir = [];
  for (let i = 0; i < RUNS; i++) {
    known = held.slice(i * n, (i + 1) * n);
    first.push(await timed(() => pool(known.length, 16, info)));
    if (first[i].ms > 25_000) log(`    the first pass took ${(first[i].ms / 1000).toFixed(1)} s: blobs read at its start may be read again in the second`);
    dir.push(await timed(() => pool(known.length, 16, info)));
    rir.push(await timed(() => pool(known.length, 16, head)));
  }
  const fi = first.map((r) => known.length / (r.ms / 1000));
  const daemonInfo = await daemonAlone(d, () => info(0));
  const rawHead = await rawAlone(p.raw, () => head(0));
  const di = dir.map((r) => known.length / (r.ms / 1000)), ri = rir.map((r) => known.length / (r.ms / 1000));
  p.row({
    name: `${known.length} Info on held blobs, first pass (read from the bucket), at concurrency 16 vs HeadObject`, unit: 'ops/s', daemon: median(fi), raw: median(ri),
    target: 'reported', cpu: { daemon: first, raw: rir },
  });
  p.row({
    name: `${known.length} Info on held blobs (second pass) at concurrency 16 vs HeadObject`, unit: 'ops/s', daemon: median(di), raw: median(ri),
    target: '>= 5x', met: median(di) >= 5 * median(ri), cpu: { daemon: dir, raw: rir },
    trips: { what: 'one Info of a held blob', daemon: daemonInfo.counts, later: daemonInfo.later, raw: rawHead.counts, aloneMs: { daemon: daemonInfo.ms, raw: rawHead.ms } },
  });
  await p.doneWith(d);
}
