// The daemon's memory: idle after start, and at its peak under one large ingest and 8 reads.
import { MiB } from '../config.mjs';
import { ingest, readAll } from '../client.mjs';
import { blob } from '../data.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
  const bigSize = 4 * p.plan.size;
  const big = blob(401, bigSize);
  await Promise.all([
    ingest(d.client, 'rss-big', big.chunks, bigSize, big.digest),
    ...Array.from({ length: 8 }, () => readAll(d.client, source.digest)),
  ]);
  const peak = d.peakRssMiB();
  p.row({ name: `daemon peak RSS: ${p.mib(bigSize)} ingest + 8 reads of ${p.mib(readSize)}`, unit: 'MiB', daemon: peak, target: '<= 160 MiB', met: peak <= 160 });
  await d.stop();
}
