// The daemon's memory: idle after start, at its peak under one large ingest and 8 reads, and idle after them.
import { writeFileSync } from 'node:fs';
import { MiB } from '../config.mjs';
import { ingest, readAll } from '../client.mjs';
import { processCpuSeconds } from '../cpu.mjs';
import { blob } from '../data.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** BENCH_RSS_LOAD: `reads` or `ingest` runs that half of the peak's load alone, to tell their shares apart. */
const LOAD = process.env.BENCH_RSS_LOAD ?? 'both';
if (!['both', 'reads', 'ingest'].includes(LOAD)) throw new Error(`BENCH_RSS_LOAD=${LOAD}: reads, ingest or both`);

export async function rssCases(p) {
  log('RSS: idle, then one large ingest while 8 reads run');
  // a daemon of its own: the peak is this load's, not an earlier case's
  // without metrics, as a daemon runs by default
  const d = await p.startDaemon('rss', [], { metrics: false });
  // the start-up probe and sweep are done by then
  await sleep(3000);
  const idle = d.rssMiB();
  p.row({ name: 'daemon idle RSS, 3 s after start', unit: 'MiB', daemon: idle, target: '<= 80 MiB', met: idle <= 80 });
  const readSize = Math.min(256 * MiB, p.plan.size);
  const source = blob(400, readSize);
  await ingest(d.client, 'rss-read', source.chunks, readSize, source.digest);
  // the reads alone: the part buffers that ingest left for the next parts are let go after 30 s idle
  if (LOAD === 'reads') await sleep(31_000);
  const bigSize = 4 * p.plan.size;
  const big = blob(401, bigSize);
  // the peak of the load alone, not of the ingest that stored what it reads (Linux: 5 resets VmHWM)
  writeFileSync(`/proc/${d.child.pid}/clear_refs`, '5');
  const cpu = processCpuSeconds(d.child.pid);
  const started = performance.now();
  await Promise.all([
    ...(LOAD === 'reads' ? [] : [ingest(d.client, 'rss-big', big.chunks, bigSize, big.digest)]),
    ...(LOAD === 'ingest' ? [] : Array.from({ length: 8 }, () => readAll(d.client, source.digest))),
  ]);
  log(`    the load took ${Math.round(performance.now() - started)} ms, the daemon's CPU ${(processCpuSeconds(d.child.pid) - cpu).toFixed(2)} s`);
  const peak = d.peakRssMiB();
  const load = { both: `${p.mib(bigSize)} ingest + 8 reads of ${p.mib(readSize)}`, reads: `8 reads of ${p.mib(readSize)} alone`, ingest: `${p.mib(bigSize)} ingest alone` }[LOAD];
  p.row({ name: `daemon peak RSS: ${load}`, unit: 'MiB', daemon: peak, target: '<= 160 MiB', met: peak <= 160 });
  // idle again: the part buffers kept for the next parts are let go 30 s after the last, and a
  // quiet daemon then hands back what it freed
  await sleep(40_000);
  const after = d.rssMiB();
  p.row({ name: 'daemon idle RSS, 40 s after that load', unit: 'MiB', daemon: after, target: '<= 80 MiB', met: after <= 80 });
  await d.stop();
}
