// Reads of a stored blob: one Read, sequential 1 MiB Reads, and containerd's proxy ReaderAt
// pattern (1 MiB and 32 KiB calls), each against one GetObject of the whole object. The patterns
// of many calls run through containerd's own Go client where it can be built, and through the
// bench's Node client beside it.
import { MiB, RUNS, want } from '../config.mjs';
import { NAMESPACE, ingest, readAll, readThroughReaderAt } from '../client.mjs';
import { median, timed } from '../cpu.mjs';
import { blob } from '../data.mjs';
import { buildContainerdClient, readWithContainerdClient } from '../containerd-client.mjs';
import { countsSince } from '../requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);

/** Stores `b` through a daemon and, as `key`, through the raw client. */
async function store(p, name, b, key) {
  const d = await p.caseDaemon(`${name}-source`);
  await ingest(d.client, name, b.chunks, b.size, b.digest);
  await p.raw.upload(key, b);
  await p.doneWith(d);
}

/**
 * RUNS runs a side: `read(daemon)` against one GetObject of `key`, both reading `size` bytes;
 * the S3 requests of a whole read counted on each side (the last run's). `read` returns the bytes
 * read, or, for a client in a process of its own, `{ bytes, ms, cpu }` as that client measured
 * them (its time without its start, its CPU in place of the bench process's). Without a
 * `factor` the row is reported, not judged.
 */
async function compare(p, { daemonName, name, size, key, target, factor, read, what }) {
  log(name);
  const d = await p.caseDaemon(daemonName);
  const dr = [], rr = [];
  let daemonCounts, rawCounts;
  for (let i = 0; i < RUNS; i++) {
    const before = await d.s3Requests();
    const run = await timed(() => read(d));
    const own = typeof run.extra === 'object' ? run.extra : undefined;
    const bytes = own ? own.bytes : run.extra;
    if (bytes !== size) throw new Error(`${name}: read ${bytes} bytes of ${size}`);
    if (own) Object.assign(run, { ms: own.ms, cpu: { ...run.cpu, client: own.cpu } });
    dr.push(run);
    daemonCounts = countsSince(before, await d.s3Requests());
    const { result, counts } = await p.raw.requests.record(() => timed(() => p.raw.get(key)));
    rr.push(result);
    rawCounts = counts;
  }
  const dm = dr.map((r) => mbps(size, r.ms)), rm = rr.map((r) => mbps(size, r.ms));
  p.row({
    name, unit: 'MB/s', daemon: median(dm), raw: median(rm), target, met: factor === undefined ? undefined : median(dm) >= factor * median(rm), cpu: { daemon: dr, raw: rr },
    trips: { what, daemon: daemonCounts, raw: rawCounts },
  });
  await p.doneWith(d);
}

export async function readCases(p) {
  const { size, smallReadAtSize } = p.plan;
  const whole = blob(300, size);
  await store(p, 'read', whole, 'raw/read-source');
  if (want('read')) {
    await compare(p, {
      daemonName: 'read', name: `read ${p.mib(size)} in one Read vs GetObject`, size, key: 'raw/read-source', target: '>= 0.85x', factor: 0.85,
      read: (d) => readAll(d.client, whole.digest), what: 'one whole read',
    });
  }
  // Rows of many calls: containerd's own Go client carries the target where it can be built; the
  // bench's Node client beside it is reported, as most of its CPU goes to garbage collection per
  // call (README, Performance). Without Go, the Node rows carry the target.
  const many = want('seqread') || want('proxyread');
  const goClient = many ? buildContainerdClient(p.work) : undefined;
  const nodeTarget = goClient ? { target: 'reported' } : { target: '>= 0.7x', factor: 0.7 };
  const go = (mode, b, callBytes) => (d) => readWithContainerdClient(goClient, mode, d.socket, NAMESPACE, b.digest, callBytes);
  const reads = Math.ceil(size / MiB);
  if (want('seqread')) {
    if (goClient) {
      await compare(p, {
        daemonName: 'seqread-go', name: `read ${p.mib(size)} as 1 MiB sequential Reads (each to its end), containerd's Go client, vs GetObject`, size,
        key: 'raw/read-source', target: '>= 0.7x', factor: 0.7, read: go('calls', whole, MiB), what: `Info and the ${reads} Reads of the blob`,
      });
    }
    await compare(p, {
      daemonName: 'seqread', name: `read ${p.mib(size)} as 1 MiB sequential Reads (each to its end), bench's Node client, vs GetObject`, size,
      key: 'raw/read-source', ...nodeTarget,
      read: async (d) => {
        let bytes = 0;
        for (let off = 0; off < size; off += MiB) bytes += await readAll(d.client, whole.digest, off, MiB);
        return bytes;
      },
      what: `the ${reads} Reads of the blob`,
    });
  }
  if (!want('proxyread')) return;
  const part = blob(301, smallReadAtSize);
  await store(p, 'proxyread-32k', part, 'raw/proxyread-32k');
  const calls = [
    { callBytes: MiB, b: whole, bytes: size, key: 'raw/read-source', daemonName: 'proxyread', label: '1 MiB' },
    // a Read call per 32 KiB: a smaller blob keeps the number of calls, and the bench's time, in bounds
    { callBytes: 32 * 1024, b: part, bytes: smallReadAtSize, key: 'raw/proxyread-32k', daemonName: 'proxyread-32k', label: '32 KiB' },
  ];
  for (const c of calls) {
    const what = `Info and the ${Math.ceil(c.bytes / c.callBytes)} Reads`;
    if (goClient) {
      await compare(p, {
        daemonName: `${c.daemonName}-go`, name: `read ${p.mib(c.bytes)} through containerd's own proxy ReaderAt (Go), ${c.label} ReadAt calls, vs GetObject`,
        size: c.bytes, key: c.key, target: '>= 0.7x', factor: 0.7, what, read: go('proxy', c.b, c.callBytes),
      });
    }
    await compare(p, {
      daemonName: c.daemonName, name: `read ${p.mib(c.bytes)} as containerd's proxy ReaderAt, bench's Node client, ${c.label} ReadAt calls, vs GetObject`,
      size: c.bytes, key: c.key, ...nodeTarget, what,
      read: (d) => readThroughReaderAt(d.client, c.b.digest, c.callBytes),
    });
  }
}
